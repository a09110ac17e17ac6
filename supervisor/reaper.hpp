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
/// "Signals are inherently concurrency-unsafe" (folly): the kernel coalesces SIGCHLDs, so one
/// delivery may stand for many exits, and the loop below drains them all. Boost.Process never
/// waits on our children: a second waiter would steal exit statuses (cpp-deps.md, section 1).
class Reaper {
 public:
  using OnExit = std::function<void(Pid, ExitStatus)>;

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
