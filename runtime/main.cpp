// corral: binds the sockets, supervises uvicorn workers, drains on SIGTERM.
// main prepares the process, parses the config, and runs the Runtime, which owns the rest.

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <vector>

#include "config/config.hpp"
#include "config/exit_codes.hpp"
#include "process/launcher.hpp"
#include "runtime/check_config.hpp"
#include "runtime/commands.hpp"
#include "runtime/logging.hpp"
#include "runtime/runtime.hpp"
#include "runtime/startup_error.hpp"
#include "runtime/status_command.hpp"

namespace corral {
namespace {

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
  closeFdsExcept(keep);
}

}  // namespace
}  // namespace corral

int main(int argc, char** argv) {
  using namespace corral;
  if (argc > 1 && std::string_view(argv[1]) == "status")
    return runStatusCommand(argc - 1, argv + 1);
  resetSignals();
  // `corral probe`, `corral run`...: one-off jobs that never start the supervisor.
  if (const auto code = runSubcommand(argc, argv)) return *code;
  const ParseOutcome outcome =
      parseCommandLine(argc, argv, processEnvironment(), std::cout, std::cerr, environmentNames());
  if (!outcome.config) return outcome.exit_code;
  const Config& config = *outcome.config;
  // Before anything reads a relative path: the workers, the pidfile and unix sockets too.
  if (!config.chdir.empty() && ::chdir(config.chdir.c_str()) != 0) {
    std::cerr << "corral: error: cannot enter --chdir " << config.chdir << ": "
              << std::strerror(errno) << '\n';
    return kExitFailure;
  }
  if (outcome.mode == ParseOutcome::Mode::Check) {
    return checkConfig(config, outcome.notices, std::cout, std::cerr);
  }
  closeInheritedFds(config);
  setupLogging(config.log_level, config.log_format);
  logNotices(outcome.notices);
  // Before anything is bound or written: unix sockets and the pidfile get this mode.
  if (config.umask) ::umask(static_cast<mode_t>(*config.umask));
  try {
    return Runtime(config, outcome.settings_report).run();
  } catch (const StartupError& e) {
    spdlog::error("{}", e.what());
    return kExitFailure;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return kExitFailure;
  }
}
