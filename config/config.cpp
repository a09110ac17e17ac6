#include "config/config.hpp"

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <system_error>

extern char** environ;  // NOLINT: POSIX declares it nowhere else

#include "config/app_dir_access.hpp"
#include "config/binds.hpp"
#include "config/config_file.hpp"
#include "config/development.hpp"
#include "config/exit_codes.hpp"
#include "config/host/resources.hpp"
#include "config/inputs.hpp"
#include "config/migration.hpp"
#include "config/option_values.hpp"
#include "config/options.hpp"
#include "config/python.hpp"
#include "config/report.hpp"
#include "config/size.hpp"
#include "config/worker_user.hpp"

#ifndef CORRAL_VERSION
#error "CORRAL_VERSION must be defined by the build"
#endif

namespace corral {
namespace {

template <typename T, typename Parse>
void apply(const std::optional<Input>& input, T& field, Parse parse) {
  if (input) field = parse(*input);
}

void applyWorkers(const Inputs& inputs, Config& config) {
  auto input = inputs.get("--workers");
  // uvicorn and gunicorn both read WEB_CONCURRENCY; honouring it makes corral a drop-in.
  // Under --reload it is production's setting, not the laptop's.
  if (!input && !config.reload) input = inputs.variable("WEB_CONCURRENCY");
  apply(inputs.get("--worker-memory-budget"), config.worker_memory_budget,
        [](const Input& in) { return parseSize(in.text, in.source); });
  if (!input && config.reload) {
    config.workers = 1;
    config.workers_reason = "--reload";
  } else if (!input || lower(input->text) == "auto") {
    // gunicorn and uvicorn count the host's CPUs, which inside a CPU-limited container has
    // OOM-killed real deployments (gunicorn #2028); the cgroup quota is what the app may use.
    // The kubelet sets this in every container (the API server's address; enableServiceLinks
    // does not remove it).
    const bool in_kubernetes = inputs.env()("KUBERNETES_SERVICE_HOST").has_value();
    const WorkerCount count = autoWorkers(detectCpuLimit(), detectMemoryLimit(),
                                          config.worker_memory_budget, in_kubernetes);
    config.workers = count.workers;
    config.workers_reason = count.explanation;
    config.workers_from_host_cpus = count.from_host_cpus;
  } else {
    config.workers = parseWorkers(*input);
    config.workers_reason = describeInput(input->source, input->text);
  }
  apply(inputs.get("--min-ready"), config.min_ready, [&](const Input& in) {
    const int min_ready = parseInRange(in, 0, INT_MAX, "expected a whole number >= 0 (0: all)");
    if (min_ready > config.workers) {
      fail(in, "more than the " + std::to_string(config.workers) +
                   " workers; use at most that many, or 0 for all");
    }
    return min_ready;
  });
}

void applyRecycling(const Inputs& inputs, Config& config) {
  apply(inputs.get("--max-requests"), config.max_requests, [](const Input& in) {
    return parseInRange(in, 0, INT_MAX / 2, "expected a whole number of requests, 0 for never");
  });
  apply(inputs.get("--max-requests-jitter"), config.max_requests_jitter, [](const Input& in) {
    return parseInRange(in, 0, INT_MAX / 2, "expected a whole number of requests >= 0");
  });
  apply(inputs.get("--max-worker-memory"), config.max_worker_memory,
        [](const Input& in) { return parseSize(in.text, in.source); });
  apply(inputs.get("--max-surge"), config.max_surge, [](const Input& in) {
    return parseInRange(in, 1, kMaxWorkers, "expected a whole number of workers >= 1");
  });
  apply(inputs.get("--start-method"), config.start_method, [](const Input& in) {
    return parseChoice(in, {"forkserver", "spawn"}, "expected forkserver or spawn");
  });
}

void applyTimeouts(const Inputs& inputs, Config& config) {
  apply(inputs.get("--timeout-keep-alive"), config.timeout_keep_alive, parseTimeout);
  apply(inputs.get("--timeout"), config.timeout, parseTimeout);
  apply(inputs.get("--graceful-timeout"), config.graceful_timeout, parseTimeout);
  apply(inputs.get("--drain-delay"), config.drain_delay, parseTimeout);
  apply(inputs.get("--startup-timeout"), config.startup_timeout, [](const Input& in) {
    const Duration timeout = parseTimeout(in);
    if (timeout == Duration::zero()) fail(in, "must be longer than 0");
    return timeout;
  });
}

// A relative path as corral and the workers will see it, once in --chdir.
std::string underChdir(const Config& config, const std::string& path) {
  if (config.chdir.empty() || path.starts_with('/')) return path;
  return config.chdir + "/" + path;
}

void applyUvicorn(const Inputs& inputs, Config& config) {
  apply(inputs.get("--proxy-headers"), config.proxy_headers, parseBool);
  apply(inputs.get("--forwarded-allow-ips"), config.forwarded_allow_ips,
        [](const Input& in) { return in.text; });
  apply(inputs.get("--root-path"), config.root_path, [](const Input& in) { return in.text; });
  apply(inputs.get("--lifespan"), config.lifespan, [](const Input& in) {
    return parseChoice(in, {"auto", "on", "off"}, "expected auto, on or off");
  });
  apply(inputs.get("--http"), config.http, [](const Input& in) {
    return parseNonEmpty(in, "expected auto, h11, httptools or an import string");
  });
  apply(inputs.get("--loop"), config.loop, [](const Input& in) {
    return parseNonEmpty(in, "expected auto, asyncio, uvloop or an import string");
  });
  apply(inputs.get("--limit-concurrency"), config.limit_concurrency, [](const Input& in) {
    return parseInRange(in, 1, INT_MAX, "expected a whole number >= 1");
  });
  apply(inputs.get("--factory"), config.factory, parseBool);
  apply(inputs.get("--preload"), config.preload, parseBool);
  apply(inputs.get("--access-log"), config.access_log, parseBool);
  apply(inputs.get("--app-dir"), config.app_dir, [&](const Input& in) {
    // Checked here: a missing directory would otherwise surface as a puzzling ImportError.
    std::error_code error;
    if (!std::filesystem::is_directory(underChdir(config, in.text), error)) {
      fail(in, "no such directory");
    }
    return in.text;
  });
}

// The files uvicorn reads as each worker starts: a mistyped path is found now, rather than as a
// worker's traceback.
std::string existingFile(const Input& input, const Config& config) {
  std::error_code error;
  const std::string path = underChdir(config, input.text);
  if (input.text.empty() || !std::filesystem::exists(path, error)) fail(input, "no such file");
  if (std::filesystem::is_directory(path, error)) fail(input, "is a directory, not a file");
  return input.text;
}

void applyTls(const Inputs& inputs, Config& config) {
  const auto file = [&](const Input& in) { return existingFile(in, config); };
  apply(inputs.get("--ssl-certfile"), config.ssl_certfile, file);
  apply(inputs.get("--ssl-keyfile"), config.ssl_keyfile, file);
  apply(inputs.get("--ssl-ca-certs"), config.ssl_ca_certs, file);
  apply(inputs.get("--ssl-keyfile-password"), config.ssl_keyfile_password,
        [](const Input& in) { return in.text; });
  apply(inputs.get("--ssl-version"), config.ssl_version, [](const Input& in) {
    return parseInRange(in, 0, 255, "expected a ssl.PROTOCOL_* number, e.g. 17 for TLS_SERVER");
  });
  apply(inputs.get("--ssl-cert-reqs"), config.ssl_cert_reqs, [](const Input& in) {
    return parseInRange(in, 0, 2, "expected 0 (none), 1 (optional) or 2 (required)");
  });
  apply(inputs.get("--ssl-ciphers"), config.ssl_ciphers,
        [](const Input& in) { return parseNonEmpty(in, "expected an OpenSSL cipher list"); });
  if (config.ssl_certfile) return;
  // uvicorn would serve plain HTTP, or fail to load a key without its certificate.
  for (const std::string name : {"--ssl-keyfile", "--ssl-keyfile-password", "--ssl-version",
                                 "--ssl-cert-reqs", "--ssl-ca-certs", "--ssl-ciphers"}) {
    if (const auto given = inputs.get(name)) {
      fail(*given, "needs --ssl-certfile too: without a certificate, there is no TLS");
    }
  }
}

void applyWebSockets(const Inputs& inputs, Config& config) {
  apply(inputs.get("--ws"), config.ws, [](const Input& in) {
    return parseNonEmpty(in, "expected auto, none, websockets, wsproto or an import string");
  });
  apply(inputs.get("--ws-max-size"), config.ws_max_size,
        [](const Input& in) { return parseSize(in.text, in.source); });
  apply(inputs.get("--ws-max-queue"), config.ws_max_queue, [](const Input& in) {
    return parseInRange(in, 1, INT_MAX, "expected a whole number of messages >= 1");
  });
  // 0 turns the pings off (uvicorn's None).
  apply(inputs.get("--ws-ping-interval"), config.ws_ping_interval, parseTimeout);
  apply(inputs.get("--ws-ping-timeout"), config.ws_ping_timeout, parseTimeout);
  apply(inputs.get("--ws-per-message-deflate"), config.ws_per_message_deflate, parseBool);
}

void applyHttp(const Inputs& inputs, Config& config) {
  for (const Input& header : inputs.list("--header", "\n")) {
    config.headers.push_back(parseHeader(header));
  }
  apply(inputs.get("--server-header"), config.server_header, parseBool);
  apply(inputs.get("--date-header"), config.date_header, parseBool);
  apply(inputs.get("--h11-max-incomplete-event-size"), config.h11_max_incomplete_event_size,
        [](const Input& in) { return parseSize(in.text, in.source); });
}

// gunicorn's --chdir: corral moves there before it binds, so that relative paths (the app
// directory, unix sockets, the pidfile, uvicorn's files) are taken from there.
void applyChdir(const Inputs& inputs, Config& config) {
  apply(inputs.get("--chdir"), config.chdir, [](const Input& in) {
    std::error_code error;
    if (in.text.empty() || !std::filesystem::is_directory(in.text, error)) {
      fail(in, "no such directory");
    }
    return std::filesystem::absolute(in.text, error).lexically_normal().string();
  });
}

void applyProcess(const Inputs& inputs, Config& config) {
  apply(inputs.get("--pidfile"), config.pidfile,
        [](const Input& in) { return parseNonEmpty(in, "expected a file path"); });
  apply(inputs.get("--umask"), config.umask, parseUmask);
  const auto user = inputs.get("--user");
  const auto group = inputs.get("--group");
  if (group && !user)
    fail(*group, "needs --user too: corral drops privileges for the workers as a whole");
  if (user) {
    config.user = resolveWorkerUser(user->source, user->text, group ? group->source : "",
                                    group ? std::optional(group->text) : std::nullopt);
  }
}

Config buildConfig(const Inputs& inputs) {
  Config config;
  config.app = parseApp(inputs.get("APP"));
  applyChdir(inputs, config);
  config.reload = readReloadFlag(inputs);
  applyWorkers(inputs, config);
  config.binds = parseBinds(inputs);
  config.admin_bind = parseAdminBind(inputs, config.binds);
  apply(inputs.get("--backlog"), config.backlog, [](const Input& in) {
    return parseInRange(in, 1, 65535, "expected a whole number from 1 to 65535");
  });
  applyTimeouts(inputs, config);
  applyRecycling(inputs, config);
  applyUvicorn(inputs, config);
  applyTls(inputs, config);
  applyWebSockets(inputs, config);
  applyHttp(inputs, config);
  apply(inputs.get("--log-level"), config.log_level, parseLogLevel);
  apply(inputs.get("--log-format"), config.log_format, [](const Input& in) {
    return parseChoice(in, {"text", "json"}, "expected text or json") == "json" ? LogFormat::Json
                                                                                : LogFormat::Text;
  });
  apply(inputs.get("--log-config"), config.log_config, [](const Input& in) {
    // Checked here: every worker would otherwise fail to boot with the same error.
    std::error_code error;
    if (!std::filesystem::is_regular_file(in.text, error)) fail(in, "no such file");
    return std::filesystem::absolute(in.text, error).string();
  });
  applyProcess(inputs, config);
  applyDevelopment(inputs, config);
  // Last: it touches the filesystem, and a typo elsewhere is the likelier mistake.
  config.python = resolvePython(inputs, config.chdir);
  checkAppDirAccess(inputs, config);
  return config;
}

// A value of the file that the environment or the command line overrides is checked all the
// same: a bad one would otherwise wait, unseen, for the day the override goes. Only errors
// about the file's own values count here; the others were settled by the first pass.
void checkOverriddenFileValues(const Inputs& inputs, const ConfigFile& file) {
  try {
    buildConfig(inputs.fileFirst());
  } catch (const ConfigError& error) {
    if (std::string_view(error.what()).starts_with(escapeControls(file.path()) + ":")) throw;
  }
}

bool given(const CommandLine& line, const std::string& flag) {
  return !line.given(flag).empty();
}

void printNotices(const std::vector<Notice>& notices, std::ostream& err) {
  for (const Notice& notice : notices) {
    err << "corral: " << (notice.level == Notice::Level::Warning ? "warning: " : "")
        << escapeControls(notice.text) << '\n';
  }
}

// Notices go to `notices` as they are found, so that those found before an error are printed
// with it: a mistyped variable may be why a setting is missing.
ParseOutcome parseOrThrow(int argc, const char* const* argv, const EnvLookup& env,
                          const std::vector<std::string>& env_names, std::ostream& out,
                          std::ostream& err, std::vector<Notice>& notices) {
  const CommandLine line = readCommandLine(argc, argv);
  if (line.request == CommandLine::Request::Help) {
    out << helpText();
    return {std::nullopt, kExitOk};
  }
  if (line.request == CommandLine::Request::Version) {
    out << "corral " << CORRAL_VERSION << '\n';
    return {std::nullopt, kExitOk};
  }
  notices = environmentNotices(env_names, env);
  std::optional<ConfigFile> file;
  if (const auto path = Inputs(line, env).get("--config")) file = ConfigFile::load(*path);
  const Inputs inputs(line, env, file ? &*file : nullptr);
  checkInertSynonyms(line, notices);
  Config config = buildConfig(inputs);
  if (file) {
    checkOverriddenFileValues(inputs, *file);
    config.config_file = file->path();
  }
  const bool check = given(line, "--check-config");
  if (given(line, "--json") && !given(line, "--print-config")) {
    throw ConfigError("--json goes with --print-config");
  }
  if (given(line, "--print-config")) {
    printNotices(notices, err);
    out << (given(line, "--json") ? settingsJson(inputs, config, notices)
                                  : settingsText(inputs, config));
    if (!check) return {std::nullopt, kExitOk};
    notices.clear();  // printed already
  }
  std::string report = settingsJson(inputs, config, notices);
  ParseOutcome outcome{std::move(config), kExitOk};
  outcome.settings_report = std::move(report);
  outcome.mode = check ? ParseOutcome::Mode::Check : ParseOutcome::Mode::Run;
  outcome.notices = std::move(notices);
  return outcome;
}

}  // namespace

std::string_view logLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::Critical: return "critical";
    case LogLevel::Error: return "error";
    case LogLevel::Warning: return "warning";
    case LogLevel::Info: return "info";
    case LogLevel::Debug: return "debug";
    case LogLevel::Trace: return "trace";
  }
  return "info";
}

EnvLookup processEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::vector<std::string> environmentNames() {
  std::vector<std::string> names;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    names.emplace_back(text.substr(0, text.find('=')));
  }
  return names;
}

ParseOutcome parseCommandLine(int argc, const char* const* argv, const EnvLookup& env,
                              std::ostream& out, std::ostream& err,
                              const std::vector<std::string>& env_names) {
  std::vector<Notice> notices;
  try {
    return parseOrThrow(argc, argv, env, env_names, out, err, notices);
  } catch (const ConfigError& error) {
    printNotices(notices, err);
    err << "corral: error: " << error.what() << '\n';
    return {std::nullopt, kExitUsage};
  } catch (const std::exception& error) {
    // A bug or resource exhaustion, not a usage mistake.
    err << "corral: error: internal error while reading options: " << printable(error.what())
        << '\n';
  } catch (...) {
    err << "corral: error: internal error while reading options\n";
  }
  return {std::nullopt, kExitFailure};
}

}  // namespace corral
