#include "process/worker_specs.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <string_view>

#include "util/json.hpp"
#include "worker/shim.hpp"

extern char** environ;  // NOLINT: POSIX declares it nowhere else

namespace corral {
namespace {

// Variables meant for corral alone: its own options, and systemd's protocols, which name
// corral's pid and would mislead a worker that reads them.
bool isCorralOnly(std::string_view entry) {
  constexpr std::array<std::string_view, 7> kPrefixes{
      "CORRAL_",         "NOTIFY_SOCKET=", "LISTEN_PID=",   "LISTEN_FDS=",
      "LISTEN_FDNAMES=", "WATCHDOG_PID=",  "WATCHDOG_USEC="};
  return std::any_of(kPrefixes.begin(), kPrefixes.end(),
                     [&](std::string_view prefix) { return entry.starts_with(prefix); });
}

double seconds(Duration d) {
  return static_cast<double>(d.count()) / 1000.0;
}

template <typename T>
void setIf(json::Object& out, std::string_view key, const std::optional<T>& value) {
  if (value) out[key] = *value;
}

// A ping time of 0 is uvicorn's None: no pings.
json::Value pingTime(Duration d) {
  return d == Duration::zero() ? json::Value(nullptr) : json::Value(seconds(d));
}

// The options corral only passes on. Only those set are sent, so that a uvicorn too old to know
// one is troubled only when it is used (the shim then names the option and the uvicorn it needs).
void addPassThrough(const Config& config, json::Object& out) {
  setIf(out, "ssl_certfile", config.ssl_certfile);
  setIf(out, "ssl_keyfile", config.ssl_keyfile);
  setIf(out, "ssl_keyfile_password", config.ssl_keyfile_password);
  setIf(out, "ssl_version", config.ssl_version);
  setIf(out, "ssl_cert_reqs", config.ssl_cert_reqs);
  setIf(out, "ssl_ca_certs", config.ssl_ca_certs);
  setIf(out, "ssl_ciphers", config.ssl_ciphers);
  setIf(out, "ws", config.ws);
  setIf(out, "ws_max_size", config.ws_max_size);
  setIf(out, "ws_max_queue", config.ws_max_queue);
  if (config.ws_ping_interval) out["ws_ping_interval"] = pingTime(*config.ws_ping_interval);
  if (config.ws_ping_timeout) out["ws_ping_timeout"] = pingTime(*config.ws_ping_timeout);
  setIf(out, "ws_per_message_deflate", config.ws_per_message_deflate);
  setIf(out, "server_header", config.server_header);
  setIf(out, "date_header", config.date_header);
  setIf(out, "h11_max_incomplete_event_size", config.h11_max_incomplete_event_size);
  if (!config.headers.empty()) {
    // uvicorn's own --header hands it [name, value] pairs.
    json::Array headers;
    for (const auto& header : config.headers)
      headers.push_back(json::Array{header.name, header.value});
    out["headers"] = std::move(headers);
  }
}

std::string_view nameOf(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

// uvicorn.Config's own keyword names and types; unset options are left to uvicorn's defaults.
json::Object uvicornSettings(const Config& config) {
  json::Object out{
      {"lifespan", config.lifespan},
      {"http", config.http},
      {"loop", config.loop},
      {"backlog", config.backlog},
      {"timeout_keep_alive", seconds(config.timeout_keep_alive)},
      {"root_path", config.root_path},
      {"log_level", logLevelName(config.log_level)},
      {"access_log", config.access_log},
      // null: uvicorn leaves logging alone and the shim sets up corral's format instead.
      {"log_config",
       config.log_config.empty() ? json::Value(nullptr) : json::Value(config.log_config)},
  };
  if (config.limit_concurrency) out["limit_concurrency"] = *config.limit_concurrency;
  if (config.proxy_headers) out["proxy_headers"] = *config.proxy_headers;
  if (config.forwarded_allow_ips) out["forwarded_allow_ips"] = *config.forwarded_allow_ips;
  addPassThrough(config, out);
  return out;
}

json::Object settingsObject(const Config& config, const std::vector<int>& listener_fds,
                            int scoreboard_fd, const WorkerRequest& request, bool no_color) {
  json::Array sockets(listener_fds.begin(), listener_fds.end());
  json::Object settings{
      {"app", config.app},
      {"app_dir", config.app_dir},
      {"factory", config.factory},
      {"slot", request.slot},
      {"sockets", std::move(sockets)},
      // A quarter of --timeout: a heartbeat can be late three times before the worker counts
      // as hung.
      {"heartbeat_interval", seconds(config.timeout) / 4.0},
      {"uvicorn", uvicornSettings(config)},
      {"log_format", config.log_format == LogFormat::Json ? "json" : "text"},
  };
  if (scoreboard_fd >= 0) settings["scoreboard"] = scoreboard_fd;
  if (request.max_requests > 0) settings["max_requests"] = request.max_requests;
  if (config.reload) {
    // The shim then serves a failed load's error (503) rather than exiting, reports the
    // libraries the app imported (from outside these folders), and the worker template lists
    // what it imported.
    settings["reload"] = true;
    settings["reload_dirs"] = json::Array(config.reload_dirs.begin(), config.reload_dirs.end());
  }
  if (no_color) settings["uvicorn"].as_object()["use_colors"] = false;
  return settings;
}

}  // namespace

WorkerSpecs::WorkerSpecs(const Config& config, std::vector<int> listener_fds,
                         std::vector<std::string> environment, int scoreboard_fd)
    : config_(config), listener_fds_(std::move(listener_fds)), scoreboard_fd_(scoreboard_fd) {
  std::copy_if(environment.begin(), environment.end(), std::back_inserter(base_env_),
               [](const std::string& entry) { return !isCorralOnly(entry); });
  // https://no-color.org: "present and not an empty string".
  no_color_ = std::any_of(environment.begin(), environment.end(), [](const std::string& entry) {
    return entry.starts_with("NO_COLOR=") && entry.size() > std::string_view("NO_COLOR=").size();
  });
  setEnvFile(config.env_file_entries);
}

void WorkerSpecs::setEnvFile(std::vector<std::string> entries) {
  std::erase_if(entries, [this](const std::string& entry) {
    return isCorralOnly(entry) ||
           std::any_of(base_env_.begin(), base_env_.end(),
                       [&](const std::string& set) { return nameOf(set) == nameOf(entry); });
  });
  env_file_ = std::move(entries);
}

std::string WorkerSpecs::settingsJson(const WorkerRequest& request) const {
  return json::write(settingsObject(config_, listener_fds_, scoreboard_fd_, request, no_color_));
}

SpawnSpec WorkerSpecs::templateSpec(int generation) const {
  SpawnSpec spec = specFor({.slot = 0, .generation = generation});
  if (!preload_.empty() || config_.preload) {
    json::Object settings =
        settingsObject(config_, listener_fds_, scoreboard_fd_, {.slot = 0}, no_color_);
    settings["preload"] = json::Array(preload_.begin(), preload_.end());
    settings["preload_app"] = config_.preload;
    spec.settings = json::write(settings);
  }
  return spec;
}

SpawnSpec WorkerSpecs::specFor(const WorkerRequest& request) const {
  SpawnSpec spec;
  spec.executable = config_.python;
  spec.args = {"-c", std::string(kWorkerShim)};
  spec.env = base_env_;
  spec.env.insert(spec.env.end(), env_file_.begin(), env_file_.end());
  spec.settings = settingsJson(request);
  return spec;
}

std::vector<std::string> currentEnvironment() {
  std::vector<std::string> result;
  for (char** entry = environ; *entry != nullptr; ++entry) result.emplace_back(*entry);
  return result;
}

}  // namespace corral
