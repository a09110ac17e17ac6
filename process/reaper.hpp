#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <functional>

#include "supervisor/exit_status.hpp"
#include "supervisor/process_spawner.hpp"

namespace corral {

/// The only caller of waitpid in corral. On SIGCHLD it collects every exited child, workers
/// and orphans alike (corral is their subreaper or PID 1), and reports each one.
///
/// "Signals are inherently concurrency-unsafe" (folly's Subprocess.h): the kernel coalesces
/// SIGCHLDs, so one delivery may stand for many exits, and the loop below drains them all. No
/// one else may wait on corral's children: a per-child waiter beside a waitpid(-1) loop races it
/// for the same zombie, and the loser sees ECHILD where an exit status should be.
class Reaper {
 public:
  using OnExit = std::function<void(Pid, const ExitStatus&)>;

  /// Must exist before the first child is spawned, so no SIGCHLD is missed.
  Reaper(boost::asio::io_context& io, OnExit on_exit);

  /// Reaps every child that has exited by now.
  void reapAll();

 private:
  void waitForSignal();

  boost::asio::signal_set sigchld_;
  OnExit on_exit_;
};

}  // namespace corral
