#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "supervisor/process_spawner.hpp"

namespace corral {

/// What to start for one worker: `PYTHON -c <shim>`, its environment, and its settings as JSON
/// (worker/PROTOCOL.md). The spawner adds the listening sockets and a control channel.
struct SpawnSpec {
  std::string executable;         ///< absolute path; also the child's argv[0]
  std::vector<std::string> args;  ///< arguments after argv[0]
  std::vector<std::string> env;   ///< environment, "NAME=value", but for the settings
  std::string settings;           ///< the worker's settings, JSON
};

/// Turns the supervisor's WorkerRequest into a SpawnSpec for this configuration.
class WorkerSpecs {
 public:
  /// `listener_fds`: the sockets workers serve on; `environment`: corral's own, "NAME=value";
  /// `scoreboard_fd`: the page the workers share to spread connections (none if < 0).
  WorkerSpecs(const Config& config, std::vector<int> listener_fds,
              std::vector<std::string> environment, int scoreboard_fd = -1);

  SpawnSpec specFor(const WorkerRequest& request) const;
  std::string settingsJson(const WorkerRequest& request) const;
  /// What a worker template of `generation` runs: slot 0's spec, and under --reload the
  /// modules to import beforehand (setPreload).
  SpawnSpec templateSpec(int generation) const;

  /// The --env-file's NAME=value entries (config.env_file_entries at first): added to the
  /// workers' environment but for the variables corral's own environment sets, which win, as
  /// with uvicorn's --env-file.
  void setEnvFile(std::vector<std::string> entries);
  /// --reload: the app's libraries, as its workers reported them, for the next templates.
  void setPreload(std::vector<std::string> modules) { preload_ = std::move(modules); }

 private:
  const Config& config_;
  std::vector<int> listener_fds_;
  int scoreboard_fd_;
  std::vector<std::string> base_env_;
  std::vector<std::string> env_file_;  ///< the entries of the env file that apply
  bool no_color_ = false;              ///< NO_COLOR is set: uvicorn's logs go without colours
  std::vector<std::string> preload_;   ///< modules a template imports beforehand
};

/// Every variable of the process environment, "NAME=value".
std::vector<std::string> currentEnvironment();

}  // namespace corral
