#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/clock.hpp"
#include "supervisor/process_spawner.hpp"

namespace corral {

/// corral's side of the worker template of --start-method forkserver (class Template in
/// worker/shim.py): a Python process, started like a worker, that has imported uvicorn and
/// forks each new worker on request. A forked worker costs a few milliseconds of CPU where a
/// fresh interpreter costs a tenth of a second, taken from the workers serving beside it while
/// one is replaced under load (recycling, reloads, respawns).
///
/// The workers it forks are reparented to corral at once and are ordinary workers from then
/// on: the Reaper collects them and the template plays no further part. A request is a blocking
/// round trip of a few milliseconds on the template's control channel, so spawning stays
/// synchronous for the Supervisor; when it fails, the spawner starts a fresh interpreter.
///
/// It may be destroyed at any time (its process exited, it was retired): its handlers check a
/// weak token first, since Asio runs a handler that was already queued when its descriptor was
/// closed.
class WorkerTemplate {
 public:
  /// Importing uvicorn takes a fraction of a second; workers wait for the template this long.
  static constexpr std::chrono::milliseconds kBootTimeout{5000};

  /// `channel`: corral's end of the template's control channel, owned from now on.
  WorkerTemplate(boost::asio::io_context& io, Clock& clock, Pid pid, int channel, int generation,
                 std::chrono::milliseconds boot_timeout = kBootTimeout);
  WorkerTemplate(const WorkerTemplate&) = delete;
  WorkerTemplate& operator=(const WorkerTemplate&) = delete;
  ~WorkerTemplate();

  Pid pid() const { return pid_; }
  /// The reload generation whose workers it forks: a reload starts a new template, so that
  /// what it imported (uvicorn, say) is re-imported as well.
  int generation() const { return generation_; }
  bool ready() const { return ready_; }
  /// Whether the template said it imported the file at this (real) path: under --reload it
  /// lists the source files of every module it has imported (IMPORTS messages) before READY.
  bool imported(const std::string& path) const { return imports_.contains(path); }

  /// Calls `ready` (from the event loop) once the template is ready, or once it is given up:
  /// it was not ready within its boot timeout (then it is killed), or releaseWaiters() was
  /// called.
  void whenReady(std::function<void()> ready);
  /// Lets whoever waits (whenReady) go on: the template is ready, or being given up and they
  /// start workers afresh.
  void releaseWaiters();

  /// Forks a worker with `settings` (its JSON) and `control_fd` (its end of its channel).
  /// Its pid, or nullopt, logged, if the template failed: the caller then retires it.
  std::optional<Pid> fork(std::string_view settings, int control_fd);

 private:
  void awaitReady();
  void onBootTimeout();

  boost::asio::posix::stream_descriptor channel_;
  std::unique_ptr<Timer> boot_timer_;
  std::vector<std::function<void()>> waiting_;
  std::set<std::string, std::less<>> imports_;
  Pid pid_;
  int generation_;
  bool ready_ = false;
  std::shared_ptr<char> alive_ = std::make_shared<char>();  ///< expires with this object
};

}  // namespace corral
