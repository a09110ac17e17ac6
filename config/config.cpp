#include "config/config.hpp"

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <system_error>

#include "config/binds.hpp"
#include "config/development.hpp"
#include "config/exit_codes.hpp"
#include "config/host/resources.hpp"
#include "config/inputs.hpp"
#include "config/option_values.hpp"
#include "config/options.hpp"
#include "config/python.hpp"
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
    const WorkerCount count =
        autoWorkers(detectCpuLimit(), detectMemoryLimit(), config.worker_memory_budget);
    config.workers = count.workers;
    config.workers_reason = count.explanation;
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
  apply(inputs.get("--access-log"), config.access_log, parseBool);
  apply(inputs.get("--app-dir"), config.app_dir, [](const Input& in) {
    // Checked here: a missing directory would otherwise surface as a puzzling ImportError.
    std::error_code error;
    if (!std::filesystem::is_directory(in.text, error)) fail(in, "no such directory");
    return in.text;
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
  apply(inputs.get("--log-level"), config.log_level, parseLogLevel);
  applyProcess(inputs, config);
  applyDevelopment(inputs, config);
  // Last: it touches the filesystem, and a typo elsewhere is the likelier mistake.
  config.python = resolvePython(inputs);
  return config;
}

ParseOutcome parseOrThrow(int argc, const char* const* argv, const EnvLookup& env,
                          std::ostream& out) {
  const CommandLine line = readCommandLine(argc, argv);
  if (line.request == CommandLine::Request::Help) {
    out << helpText();
    return {std::nullopt, kExitOk};
  }
  if (line.request == CommandLine::Request::Version) {
    out << "corral " << CORRAL_VERSION << '\n';
    return {std::nullopt, kExitOk};
  }
  return {buildConfig(Inputs(line, env)), kExitOk};
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

ParseOutcome parseCommandLine(int argc, const char* const* argv, const EnvLookup& env,
                              std::ostream& out, std::ostream& err) {
  try {
    return parseOrThrow(argc, argv, env, out);
  } catch (const ConfigError& error) {
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
