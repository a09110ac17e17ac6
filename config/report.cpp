#include "config/report.hpp"

#include <functional>
#include <map>
#include <optional>

#include "config/binds.hpp"
#include "config/config_file.hpp"
#include "config/migration.hpp"
#include "config/size.hpp"
#include "util/json.hpp"

#ifndef CORRAL_VERSION
#error "CORRAL_VERSION must be defined by the build"
#endif

namespace corral {
namespace {

constexpr std::string_view kHidden = "********";

// One line of the report.
struct Setting {
  std::string key;                   ///< the config file's key
  std::optional<json::Value> value;  ///< nullopt: not set (uvicorn's or corral's default applies)
  Origin origin = Origin::Default;
  std::string source;   ///< the flag, the variable or FILE:LINE; empty for a default
  std::string note;     ///< how a default was chosen, when that says something
  bool in_file = true;  ///< false: a command-line and environment setting (--config)
};

using Value = std::optional<json::Value>;
using Render = std::function<Value(const Config&)>;

template <typename T>
Value optional(const std::optional<T>& value) {
  if (!value) return std::nullopt;
  return json::Value(*value);
}

Value duration(Duration d) {
  return json::Value(formatDuration(d));
}

Value optionalDuration(const std::optional<Duration>& d) {
  return d ? duration(*d) : std::nullopt;
}

Value optionalSize(const std::optional<std::uint64_t>& bytes) {
  if (!bytes) return std::nullopt;
  return json::Value(formatSize(*bytes));
}

// The effective value of each option, as the config file would write it. An option added to the
// table without a renderer here is still listed, with the text it was given.
const std::map<std::string_view, Render>& renderers() {
  static const std::map<std::string_view, Render> table = {
      {"--bind",
       [](const Config& c) -> Value {
         json::Array binds;
         for (const auto& bind : c.binds) binds.emplace_back(bind.str());
         return json::Value(std::move(binds));
       }},
      {"--admin-bind",
       [](const Config& c) -> Value {
         return json::Value(c.admin_bind ? c.admin_bind->str() : std::string("none"));
       }},
      {"--backlog", [](const Config& c) -> Value { return json::Value(c.backlog); }},
      {"--workers", [](const Config& c) -> Value { return json::Value(c.workers); }},
      {"--worker-memory-budget",
       [](const Config& c) { return optionalSize(c.worker_memory_budget); }},
      {"--min-ready", [](const Config& c) -> Value { return json::Value(c.min_ready); }},
      {"--max-requests", [](const Config& c) -> Value { return json::Value(c.max_requests); }},
      {"--max-requests-jitter",
       [](const Config& c) -> Value { return json::Value(c.max_requests_jitter); }},
      {"--max-worker-memory", [](const Config& c) { return optionalSize(c.max_worker_memory); }},
      {"--max-surge", [](const Config& c) -> Value { return json::Value(c.max_surge); }},
      {"--python", [](const Config& c) -> Value { return json::Value(c.python); }},
      {"--start-method", [](const Config& c) -> Value { return json::Value(c.start_method); }},
      {"--timeout", [](const Config& c) { return duration(c.timeout); }},
      {"--graceful-timeout", [](const Config& c) { return duration(c.graceful_timeout); }},
      {"--startup-timeout", [](const Config& c) { return duration(c.startup_timeout); }},
      {"--drain-delay", [](const Config& c) { return duration(c.drain_delay); }},
      {"--timeout-keep-alive", [](const Config& c) { return duration(c.timeout_keep_alive); }},
      {"--proxy-headers", [](const Config& c) { return optional(c.proxy_headers); }},
      {"--forwarded-allow-ips", [](const Config& c) { return optional(c.forwarded_allow_ips); }},
      {"--root-path", [](const Config& c) -> Value { return json::Value(c.root_path); }},
      {"--lifespan", [](const Config& c) -> Value { return json::Value(c.lifespan); }},
      {"--http", [](const Config& c) -> Value { return json::Value(c.http); }},
      {"--loop", [](const Config& c) -> Value { return json::Value(c.loop); }},
      {"--limit-concurrency", [](const Config& c) { return optional(c.limit_concurrency); }},
      {"--factory", [](const Config& c) -> Value { return json::Value(c.factory); }},
      {"--access-log", [](const Config& c) -> Value { return json::Value(c.access_log); }},
      {"--app-dir", [](const Config& c) -> Value { return json::Value(c.app_dir); }},
      {"--server-header", [](const Config& c) { return optional(c.server_header); }},
      {"--date-header", [](const Config& c) { return optional(c.date_header); }},
      {"--header",
       [](const Config& c) -> Value {
         if (c.headers.empty()) return std::nullopt;
         json::Array headers;
         for (const auto& h : c.headers) headers.emplace_back(h.name + ": " + h.value);
         return json::Value(std::move(headers));
       }},
      {"--h11-max-incomplete-event-size",
       [](const Config& c) { return optionalSize(c.h11_max_incomplete_event_size); }},
      {"--ws", [](const Config& c) { return optional(c.ws); }},
      {"--ws-max-size", [](const Config& c) { return optionalSize(c.ws_max_size); }},
      {"--ws-max-queue", [](const Config& c) { return optional(c.ws_max_queue); }},
      {"--ws-ping-interval", [](const Config& c) { return optionalDuration(c.ws_ping_interval); }},
      {"--ws-ping-timeout", [](const Config& c) { return optionalDuration(c.ws_ping_timeout); }},
      {"--ws-per-message-deflate",
       [](const Config& c) { return optional(c.ws_per_message_deflate); }},
      {"--ssl-certfile", [](const Config& c) { return optional(c.ssl_certfile); }},
      {"--ssl-keyfile", [](const Config& c) { return optional(c.ssl_keyfile); }},
      {"--ssl-keyfile-password",
       [](const Config& c) -> Value {
         if (!c.ssl_keyfile_password) return std::nullopt;
         return json::Value(kHidden);  // a secret, and --print-config output gets pasted
       }},
      {"--ssl-version", [](const Config& c) { return optional(c.ssl_version); }},
      {"--ssl-cert-reqs", [](const Config& c) { return optional(c.ssl_cert_reqs); }},
      {"--ssl-ca-certs", [](const Config& c) { return optional(c.ssl_ca_certs); }},
      {"--ssl-ciphers", [](const Config& c) { return optional(c.ssl_ciphers); }},
      {"--pidfile",
       [](const Config& c) -> Value {
         if (c.pidfile.empty()) return std::nullopt;
         return json::Value(c.pidfile);
       }},
      {"--user",
       [](const Config& c) -> Value {
         if (!c.user) return std::nullopt;
         return json::Value(c.user->name.empty() ? std::to_string(c.user->uid) : c.user->name);
       }},
      {"--group",
       [](const Config& c) -> Value {
         if (!c.user) return std::nullopt;
         return json::Value(std::to_string(c.user->gid));
       }},
      {"--umask",
       [](const Config& c) -> Value {
         if (!c.umask) return std::nullopt;
         std::string octal = "000";
         for (int digit = 2, mode = static_cast<int>(*c.umask); digit >= 0; --digit, mode /= 8) {
           octal[static_cast<std::size_t>(digit)] = static_cast<char>('0' + mode % 8);
         }
         return json::Value(octal);
       }},
      {"--chdir",
       [](const Config& c) -> Value {
         if (c.chdir.empty()) return std::nullopt;
         return json::Value(c.chdir);
       }},
      {"--log-level",
       [](const Config& c) -> Value { return json::Value(logLevelName(c.log_level)); }},
      {"--config",
       [](const Config& c) -> Value {
         if (c.config_file.empty()) return std::nullopt;
         return json::Value(c.config_file);
       }},
  };
  return table;
}

void fromInput(Setting& setting, const Input& input) {
  setting.origin = input.origin;
  setting.source = input.source;
  // "corral.toml:3: workers" is reported as corral.toml:3.
  if (input.origin == Origin::File)
    setting.source = input.source.substr(0, input.source.rfind(": "));
}

// Where the winning value of an option came from: its own inputs, or for a few options what
// stands in for their default (WEB_CONCURRENCY, PORT, LISTEN_FDS, VIRTUAL_ENV).
void findOrigin(Setting& setting, const std::string& name, const Inputs& inputs,
                const Config& config) {
  if (name == "--bind") {
    const auto given = bindInputs(inputs);
    if (!given.empty()) return fromInput(setting, given.front());
  } else if (const auto input = inputs.get(name)) {
    return fromInput(setting, *input);
  }
  const auto variable = [&](const std::string& stand_in) {
    if (!inputs.variable(stand_in)) return false;
    setting.origin = Origin::Environment;
    setting.source = stand_in;
    return true;
  };
  const bool activated =
      std::any_of(config.binds.begin(), config.binds.end(),
                  [](const BindAddress& bind) { return bind.kind == BindAddress::Kind::Fd; });
  if (name == "--workers") {
    if (!variable("WEB_CONCURRENCY")) setting.note = config.workers_reason;
  } else if (name == "--bind") {
    if (!(activated && variable("LISTEN_FDS"))) variable("PORT");
  } else if (name == "--admin-bind") {
    if (config.admin_bind && config.admin_bind->kind == BindAddress::Kind::Fd) {
      variable("LISTEN_FDS");
    }
  } else if (name == "--python") {
    if (!variable("VIRTUAL_ENV")) setting.note = "python3 on PATH";
  }
}

std::vector<Setting> collect(const Inputs& inputs, const Config& config) {
  std::vector<Setting> settings;
  Setting app;
  app.key = "app";
  app.value = json::Value(config.app);
  findOrigin(app, "APP", inputs, config);
  settings.push_back(std::move(app));
  for (const OptionInfo& option : optionTable()) {
    if (!option.in_environment && !option.in_file) continue;  // --help, --print-config...
    Setting setting;
    setting.key = spell(option.name, Spelling::Key);
    setting.in_file = option.in_file;
    findOrigin(setting, option.name, inputs, config);
    const auto renderer = renderers().find(option.name);
    if (renderer != renderers().end()) {
      setting.value = renderer->second(config);
    } else if (const auto input = inputs.get(option.name)) {
      setting.value = json::Value(input->text);
    }
    settings.push_back(std::move(setting));
  }
  return settings;
}

std::string_view originName(Origin origin) {
  switch (origin) {
    case Origin::Default: return "default";
    case Origin::File: return "file";
    case Origin::Environment: return "environment";
    case Origin::CommandLine: return "command line";
  }
  return "default";
}

std::string comment(const Setting& setting) {
  std::string text(originName(setting.origin));
  if (!setting.source.empty()) text += " " + setting.source;
  if (!setting.note.empty()) text += ": " + setting.note;
  return text;
}

}  // namespace

std::string settingsText(const Inputs& inputs, const Config& config) {
  constexpr std::size_t kColumn = 40;
  std::string out = "# corral " CORRAL_VERSION
                    ": the settings in effect, and where each came from (the command line\n"
                    "# wins over the environment, which wins over the config file). This is a "
                    "config file.\n";
  for (const Setting& setting : collect(inputs, config)) {
    std::string line;
    if (!setting.value) {
      line = "# " + setting.key + " is not set";
    } else if (!setting.in_file) {
      line = "# " + setting.key + " = " + json::write(*setting.value);
    } else {
      line = setting.key + " = " + json::write(*setting.value);
    }
    line += std::string(line.size() < kColumn ? kColumn - line.size() : 1, ' ');
    out += line + "# " + comment(setting) + "\n";
  }
  return out;
}

std::string settingsJson(const Inputs& inputs, const Config& config,
                         const std::vector<Notice>& notices) {
  json::Object settings;
  for (const Setting& setting : collect(inputs, config)) {
    json::Object entry{
        {"value", setting.value ? *setting.value : json::Value(nullptr)},
        {"origin", originName(setting.origin)},
        {"source", setting.source.empty() ? json::Value(nullptr) : json::Value(setting.source)},
    };
    if (!setting.note.empty()) entry["note"] = setting.note;
    settings[setting.key] = std::move(entry);
  }
  json::Array warnings;
  for (const Notice& notice : notices) {
    if (notice.level == Notice::Level::Warning) warnings.emplace_back(notice.text);
  }
  json::Object report{
      {"corral", CORRAL_VERSION},
      {"config_file",
       config.config_file.empty() ? json::Value(nullptr) : json::Value(config.config_file)},
      {"settings", std::move(settings)},
      {"warnings", std::move(warnings)},
  };
  return json::write(report) + "\n";
}

}  // namespace corral
