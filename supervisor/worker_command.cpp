#include "supervisor/worker_command.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <string_view>

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

// uvicorn.Config's own keyword names and types; unset options are left to uvicorn's defaults.
std::string uvicornJson(const Config& config) {
  std::string out = fmt::format(
      R"({{"lifespan": {}, "http": {}, "loop": {}, "backlog": {}, "timeout_keep_alive": {}, )"
      R"("root_path": {}, "log_level": {}, "access_log": {})",
      jsonString(config.lifespan), jsonString(config.http), jsonString(config.loop), config.backlog,
      seconds(config.timeout_keep_alive), jsonString(config.root_path),
      jsonString(logLevelName(config.log_level)), config.access_log);
  if (config.limit_concurrency)
    out += fmt::format(R"(, "limit_concurrency": {})", *config.limit_concurrency);
  if (config.proxy_headers) out += fmt::format(R"(, "proxy_headers": {})", *config.proxy_headers);
  if (config.forwarded_allow_ips) {
    out += R"(, "forwarded_allow_ips": )" + jsonString(*config.forwarded_allow_ips);
  }
  return out + "}";
}

std::string jsonIntList(const std::vector<int>& values) {
  return "[" + fmt::format("{}", fmt::join(values, ", ")) + "]";
}

}  // namespace

WorkerCommand::WorkerCommand(const Config& config, std::vector<int> listener_fds,
                             std::vector<std::string> environment)
    : config_(config), listener_fds_(std::move(listener_fds)) {
  std::copy_if(environment.begin(), environment.end(), std::back_inserter(base_env_),
               [](const std::string& entry) { return !isCorralOnly(entry); });
}

std::string WorkerCommand::settingsJson(int slot, int max_requests) const {
  // A quarter of --timeout: a heartbeat can be late three times before the worker counts as hung.
  const double heartbeat = seconds(config_.timeout) / 4.0;
  const std::string limit =
      max_requests > 0 ? fmt::format(R"("max_requests": {}, )", max_requests) : "";
  return fmt::format(R"({{"app": {}, "app_dir": {}, "factory": {}, "slot": {}, "sockets": {}, )"
                     R"("heartbeat_interval": {}, {}"uvicorn": {}}})",
                     jsonString(config_.app), jsonString(config_.app_dir), config_.factory, slot,
                     jsonIntList(listener_fds_), heartbeat, limit, uvicornJson(config_));
}

SpawnSpec WorkerCommand::specFor(int slot, int max_requests) const {
  SpawnSpec spec;
  spec.slot = slot;
  spec.executable = config_.python;
  spec.args = {"-c", std::string(kWorkerShim)};
  spec.env = base_env_;
  spec.settings = settingsJson(slot, max_requests);
  return spec;
}

std::vector<std::string> currentEnvironment() {
  std::vector<std::string> result;
  for (char** entry = environ; *entry != nullptr; ++entry) result.emplace_back(*entry);
  return result;
}

std::string jsonString(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace corral
