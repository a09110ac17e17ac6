#include "signals/signal_router.hpp"

#include <spdlog/spdlog.h>

#include <csignal>

#include "config/exit_codes.hpp"
#include "supervisor/supervisor.hpp"
#include "util/text.hpp"

namespace corral {

SignalRouter::SignalRouter(boost::asio::io_context& io, Supervisor& supervisor)
    : signals_(io), supervisor_(supervisor) {
  for (const int signo :
       {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGTSTP}) {
    signals_.add(signo);
  }
  wait();
}

void SignalRouter::wait() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    if (const auto event = eventFor(signo)) {
      supervisor_.handle(*event);
    } else {
      // SIGTSTP: job control must never freeze a supervisor whose workers keep running.
      spdlog::info("{} received: ignored", signalName(signo));
    }
    wait();
  });
}

// The role of each signal, in one table (nginx's NGX_SHUTDOWN_SIGNAL and friends).
std::optional<Event> SignalRouter::eventFor(int signo) {
  switch (signo) {
    case SIGTERM: return Event::signal(EventKind::GracefulStop, "SIGTERM");
    case SIGINT: return Event::signal(EventKind::QuickStop, "SIGINT", kExitInterrupted);
    case SIGQUIT: return Event::signal(EventKind::QuickStop, "SIGQUIT", kExitOk);
    case SIGHUP: return Event::signal(EventKind::Reload, "SIGHUP");
    case SIGTTIN: return Event::signal(EventKind::ScaleUp, "SIGTTIN");
    case SIGTTOU: return Event::signal(EventKind::ScaleDown, "SIGTTOU");
    default: return std::nullopt;
  }
}

}  // namespace corral
