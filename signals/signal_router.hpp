#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

namespace corral {

class Supervisor;

/// Turns signals into supervisor requests. Handlers record and the loop acts: asio's
/// signal_set delivers on the io_context through a self-pipe, never inside the raw handler.
///
/// Every signal corral acts on gets a real handler: as PID 1 the kernel drops signals left at
/// their default action, and as a plain process SIGHUP, SIGUSR1 or SIGTTIN at their default
/// action would kill or stop corral with its workers.
class SignalRouter {
 public:
  SignalRouter(boost::asio::io_context& io, Supervisor& supervisor);
  void close();

 private:
  void wait();
  void route(int signo);

  boost::asio::signal_set signals_;
  Supervisor& supervisor_;
};

}  // namespace corral
