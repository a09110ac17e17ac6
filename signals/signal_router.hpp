#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <optional>

#include "supervisor/event.hpp"

namespace corral {

class Supervisor;

/// Turns signals into supervisor events. Handlers record and the loop acts: asio's signal_set
/// delivers on the io_context through a self-pipe, never inside the raw handler.
///
/// Every signal corral acts on gets a real handler: as PID 1 the kernel drops signals left at
/// their default action, and as a plain process SIGHUP, SIGUSR1 or SIGTTIN at their default
/// action would kill or stop corral with its workers. It lives as long as the event loop runs.
class SignalRouter {
 public:
  SignalRouter(boost::asio::io_context& io, Supervisor& supervisor);

  /// The event a signal stands for; nullopt for the ones corral catches only to ignore.
  static std::optional<Event> eventFor(int signo);

 private:
  void wait();

  boost::asio::signal_set signals_;
  Supervisor& supervisor_;
};

}  // namespace corral
