#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "supervisor/process_spawner.hpp"

namespace corral {

/// Builds the command line, environment and settings of a worker: `PYTHON -c <shim>` with its
/// settings as JSON (worker/PROTOCOL.md).
class WorkerCommand {
 public:
  /// `listener_fds`: the sockets workers serve on; `environment`: corral's own, "NAME=value".
  WorkerCommand(const Config& config, std::vector<int> listener_fds,
                std::vector<std::string> environment);

  /// `max_requests`: this worker's recycling limit, jitter included; 0 for none.
  SpawnSpec specFor(int slot, int max_requests = 0) const;

  /// The settings JSON for a worker; exposed for tests.
  std::string settingsJson(int slot, int max_requests = 0) const;

 private:
  const Config& config_;
  std::vector<int> listener_fds_;
  std::vector<std::string> base_env_;
};

/// Every variable of the process environment, "NAME=value".
std::vector<std::string> currentEnvironment();

/// JSON string literal for `text`, quotes included.
std::string jsonString(std::string_view text);

}  // namespace corral
