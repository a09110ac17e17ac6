#include "signals/signal_router.hpp"

#include <spdlog/spdlog.h>

#include <csignal>

#include "config/exit_codes.hpp"
#include "supervisor/exit_status.hpp"
#include "supervisor/supervisor.hpp"

namespace corral {

SignalRouter::SignalRouter(boost::asio::io_context& io, Supervisor& supervisor)
    : signals_(io), supervisor_(supervisor) {
  for (const int signo :
       {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGTSTP}) {
    signals_.add(signo);
  }
  wait();
}

void SignalRouter::close() {
  boost::system::error_code ignored;
  signals_.cancel(ignored);
  signals_.clear(ignored);
}

void SignalRouter::wait() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    route(signo);
    wait();
  });
}

// The role of each signal, in one table (nginx's NGX_SHUTDOWN_SIGNAL and friends).
void SignalRouter::route(int signo) {
  switch (signo) {
    case SIGTERM: return supervisor_.gracefulStop("SIGTERM");
    case SIGINT: return supervisor_.quickStop("SIGINT", kExitInterrupted);
    case SIGQUIT: return supervisor_.quickStop("SIGQUIT", kExitOk);
    case SIGHUP: return supervisor_.reload("SIGHUP");
    case SIGTTIN: return supervisor_.scaleUp();
    case SIGTTOU: return supervisor_.scaleDown();
    default:
      // SIGTSTP: job control must never freeze a supervisor whose workers keep running.
      spdlog::info("{} received: ignored", signalName(signo));
  }
}

}  // namespace corral
