// corral: binds the sockets, supervises uvicorn workers, drains on SIGTERM.
// main parses the config, builds the pieces around one io_context, runs it, and returns the
// supervisor's exit code.

#include <linux/close_range.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <optional>
#include <random>
#include <vector>

#include "config/config.hpp"
#include "config/exit_codes.hpp"
#include "signals/signal_router.hpp"
#include "supervisor/admin_server.hpp"
#include "supervisor/asio_clock.hpp"
#include "supervisor/listener.hpp"
#include "supervisor/logging.hpp"
#include "supervisor/pidfile.hpp"
#include "supervisor/posix_spawner.hpp"
#include "supervisor/sd_notify.hpp"
#include "supervisor/supervisor.hpp"
#include "supervisor/worker_command.hpp"

namespace corral {
namespace {

std::vector<Listener> openListeners(const Config& config) {
  const int somaxconn = readSomaxconn();
  if (somaxconn > 0 && config.backlog > somaxconn) {
    spdlog::warn(
        "--backlog {} exceeds net.core.somaxconn {}: the kernel silently uses {}; raise "
        "the sysctl to get the backlog you asked for",
        config.backlog, somaxconn, somaxconn);
  }
  std::vector<Listener> listeners;
  for (const BindAddress& address : config.binds) {
    listeners.push_back(Listener::open(address, config.backlog));
    spdlog::info("listening on {}", listeners.back().url());
  }
  return listeners;
}

// Orphans of the workers (their double-forked children, say) come to corral rather than to
// the host's init, and the Reaper collects them. As PID 1 they come anyway. False if corral
// does not adopt orphans.
bool becomeSubreaper() {
  if (::getpid() == 1) return true;
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    spdlog::warn(
        "cannot become a child subreaper ({}): orphaned grandchildren of workers will "
        "go to the host's init, and workers start afresh instead of from the worker template",
        std::strerror(errno));
    return false;
  }
  return true;
}

// A parent may have blocked signals, and a blocked SIGTERM or SIGCHLD would never reach the
// handlers (sigprocmask survives exec). Job-control signals are ignored until SignalRouter
// installs its handlers, so that nothing corral writes meanwhile can stop it.
void resetSignals() {
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (const int signo : {SIGTTIN, SIGTTOU, SIGTSTP}) ::signal(signo, SIG_IGN);
  // Writes to a closed admin connection must fail with EPIPE, not kill corral.
  ::signal(SIGPIPE, SIG_IGN);
}

// Descriptors a parent leaked (the write end of its pipe, say) would keep that parent waiting;
// corral keeps only stdio and the sockets it was told to adopt.
void closeInheritedFds(const Config& config) {
  std::vector<int> keep{0, 1, 2};
  for (const BindAddress& address : config.binds) {
    if (address.kind == BindAddress::Kind::Fd) keep.push_back(address.fd);
  }
  if (config.admin_bind && config.admin_bind->kind == BindAddress::Kind::Fd) {
    keep.push_back(config.admin_bind->fd);
  }
  std::sort(keep.begin(), keep.end());
  unsigned next = 0;
  for (const int fd : keep) {
    const auto u = static_cast<unsigned>(fd);
    if (u > next) ::close_range(next, u - 1, 0);
    next = std::max(next, u + 1);
  }
  ::close_range(next, ~0U, 0);
}

int run(const Config& config) {
  boost::asio::io_context io(1);
  if (config.umask) ::umask(static_cast<mode_t>(*config.umask));
  const std::vector<Listener> listeners = openListeners(config);
  std::vector<int> fds;
  for (const Listener& listener : listeners) fds.push_back(listener.fd());
  std::optional<Pidfile> pidfile;
  if (!config.pidfile.empty()) pidfile.emplace(config.pidfile);
  // Forked workers are corral's only once it adopts them.
  const bool use_template = becomeSubreaper() && config.start_method == "forkserver";

  int exit_code = kExitFailure;
  PosixSpawner spawner(io, fds, config.user, use_template);
  AsioClock clock(io);
  Notifier notifier(processEnvironment(), ::getpid());
  notifier.startWatchdog(clock);
  std::mt19937 rng{std::random_device{}()};
  Supervisor::Hooks hooks{
      .on_stopped =
          [&](int code) {
            exit_code = code;
            io.stop();
          },
      .notify = [&](std::string_view message) { notifier.send(message); },
      .gate_listeners =
          [&] {
            for (const Listener& listener : listeners) listener.gateNewConnections();
          },
      .queued_connections =
          [&] {
            std::size_t queued = 0;
            for (const Listener& listener : listeners) queued += listener.queuedConnections();
            return queued;
          },
      .random = [&](int n) { return std::uniform_int_distribution<int>(0, n)(rng); },
  };
  Supervisor supervisor(config, clock, spawner, WorkerCommand(config, fds, currentEnvironment()),
                        std::move(hooks));
  SignalRouter signals(io, supervisor);
  std::optional<AdminServer> admin;
  if (config.admin_bind) {
    admin.emplace(io, *config.admin_bind, [&](std::string_view method, std::string_view target) {
      ++supervisor.metrics().admin_requests;
      return routeAdmin(method, target, supervisor.status(), supervisor.metrics());
    });
    spdlog::info("admin on {}", admin->url());
  }
  supervisor.start();
  io.run();
  return exit_code;
}

}  // namespace
}  // namespace corral

int main(int argc, char** argv) {
  using namespace corral;
  resetSignals();
  const ParseOutcome outcome =
      parseCommandLine(argc, argv, processEnvironment(), std::cout, std::cerr);
  if (!outcome.config) return outcome.exit_code;
  closeInheritedFds(*outcome.config);
  setupLogging(outcome.config->log_level);
  try {
    return run(*outcome.config);
  } catch (const BindError& e) {
    spdlog::error("{}", e.what());
    return kExitFailure;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return kExitFailure;
  }
}
