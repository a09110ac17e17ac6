#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "supervisor/process_spawner.hpp"

namespace corral {

/// The worker template of --start-method forkserver (class Template in worker/shim.py): a Python
/// process, started like a worker, that has imported uvicorn and forks each new worker on
/// request. A forked worker costs a few milliseconds of CPU where a fresh interpreter costs a
/// tenth of a second, taken from the workers serving beside it while one is replaced under
/// load (recycling, reloads, respawns).
///
/// The workers it forks are reparented to corral at once and are ordinary workers from then
/// on: the Reaper collects them and the template plays no further part. A request is a blocking
/// round trip of a few milliseconds on the template's control channel, so spawning stays
/// synchronous for the Supervisor; when it fails, the spawner starts a fresh interpreter.
class WorkerTemplate {
 public:
  /// `channel`: corral's end of the template's control channel, owned from now on.
  WorkerTemplate(boost::asio::io_context& io, Pid pid, int channel, int generation);

  Pid pid() const { return pid_; }
  /// The reload generation whose workers it forks: a reload starts a new template, so that
  /// what it imported (uvicorn, say) is re-imported as well.
  int generation() const { return generation_; }
  bool ready() const { return ready_; }

  /// Calls `ready` (from the event loop) once the template is ready, or once it is given up:
  /// it was not ready within its boot timeout (then it is killed), or release() was called.
  void whenReady(std::function<void()> ready);
  /// Lets whoever waits (whenReady) go on without this template, which is being dropped:
  /// they start workers afresh.
  void release();

  /// Forks a worker with `settings` (its JSON) and `control_fd` (its end of its channel).
  /// Its pid, or nullopt, logged, if the template failed: the caller then retires it.
  std::optional<Pid> fork(std::string_view settings, int control_fd);

 private:
  void awaitReady();

  boost::asio::posix::stream_descriptor channel_;
  boost::asio::steady_timer boot_timer_;
  std::vector<std::function<void()>> waiting_;
  Pid pid_;
  int generation_;
  bool ready_ = false;
};

}  // namespace corral
