#include "runtime/run_command.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string_view>

#include "config/config_error.hpp"
#include "config/exit_codes.hpp"
#include "process/launcher.hpp"
#include "process/reaper.hpp"
#include "runtime/commands.hpp"
#include "runtime/logging.hpp"
#include "util/files.hpp"
#include "util/text.hpp"

extern char** environ;  // NOLINT(readability-identifier-naming): POSIX's name

namespace corral {
namespace {
namespace asio = boost::asio;

// What a container runtime or a terminal sends that the command, not corral, should act on.
constexpr auto kForwarded = std::to_array({SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2});

// As a shell reports a command it could not run (POSIX, "Command Search and Execution").
constexpr int kExitCannotExecute = 126;
constexpr int kExitNotFound = 127;

constexpr std::string_view kDefaultSearchPath = "/usr/local/bin:/usr/bin:/bin";

// The descriptors corral inherited beyond stdio, which the command inherits in turn (as
// under tini): read before corral opens any of its own.
std::vector<int> inheritedFds() {
  std::vector<int> fds;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", error)) {
    const auto fd = parseInt<int>(entry.path().filename().string());
    if (fd && *fd > STDERR_FILENO) fds.push_back(*fd);
  }
  // The iterator's own descriptor was among them, and is closed now.
  std::erase_if(fds, [](int fd) { return ::fcntl(fd, F_GETFD) == -1; });
  return fds;
}

std::vector<std::string> environment() {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) env.emplace_back(*entry);
  return env;
}

// execvp's lookup, before the fork, so that a missing command is reported as a shell would.
std::optional<std::string> locate(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  if (name.empty()) return std::nullopt;
  const char* path = std::getenv("PATH");
  return findExecutable(name, path != nullptr ? std::string_view(path) : kDefaultSearchPath);
}

int exitCodeOf(const ExitStatus& status) {
  return status.kind == ExitStatus::Kind::Signaled ? 128 + status.code : status.code;
}

// With the terminal's foreground, the command reads it and gets Ctrl-C itself, as it would
// from a shell; only when corral has it to give.
bool ownsTerminal() {
  return ::isatty(STDIN_FILENO) == 1 && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp();
}

class OneOff {
 public:
  explicit OneOff(const RunRequest& request)
      : request_(request),
        signals_(io_),
        reaper_(io_, [this](Pid pid, const ExitStatus& status) { onExit(pid, status); }) {
    for (const int signo : kForwarded) signals_.add(signo);
  }

  // The exit code corral ends with.
  int run(const std::string& executable, const std::vector<int>& inherited) {
    // Orphans of the command come to corral; as PID 1 they come anyway.
    if (::getpid() != 1 && ::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
      spdlog::warn("cannot become a child subreaper ({}): orphans go to the host's init",
                   std::strerror(errno));
    }
    LaunchSpec spec{executable, request_.argv, environment(), inherited, std::nullopt};
    spec.take_terminal = ownsTerminal();
    const SpawnResult started = launch(spec);
    if (!started.ok()) {
      std::cerr << "corral run: " << printable(request_.argv.front()) << ": "
                << std::strerror(started.error) << '\n';
      return started.error == ENOENT || started.error == ENOTDIR ? kExitNotFound
                                                                 : kExitCannotExecute;
    }
    child_ = started.pid;
    forwardSignals();
    io_.run();
    return exitCodeOf(status_);
  }

 private:
  void forwardSignals() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      // ESRCH once the command is gone (its exit not reaped yet): nothing to pass on.
      ::kill(request_.group_signals ? -child_ : child_, signo);
      forwardSignals();
    });
  }

  void onExit(Pid pid, const ExitStatus& status) {
    if (pid != child_) return;  // an orphan, reaped
    status_ = status;
    io_.stop();
  }

  const RunRequest& request_;
  asio::io_context io_;
  asio::signal_set signals_;
  Reaper reaper_;
  Pid child_ = -1;
  ExitStatus status_;
};

}  // namespace

RunRequest parseRunArgs(const std::vector<std::string>& args) {
  RunRequest request;
  std::size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "--group-signals" || arg == "-g") {  // -g: tini's spelling
      request.group_signals = true;
    } else if (arg.starts_with("-")) {
      throw ConfigError("unknown option '" + printable(arg) +
                        "'; options go before '--', the command after it");
    } else {
      break;
    }
  }
  request.argv.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  if (request.argv.empty()) {
    throw ConfigError("no command to run; usage: corral run [--group-signals] -- CMD [ARGS...]");
  }
  return request;
}

int runCommand(const std::vector<std::string>& args) {
  const std::vector<int> inherited = inheritedFds();
  RunRequest request;
  try {
    request = parseRunArgs(args);
  } catch (const ConfigError& error) {
    return usageError("run", error.what());
  }
  const auto executable = locate(request.argv.front());
  if (!executable) {
    std::cerr << "corral run: " << printable(request.argv.front()) << ": command not found\n";
    return kExitNotFound;
  }
  // Only warnings (a signal it could not forward): in the format the service's CORRAL_LOG_FORMAT
  // asks for, since a migration Job shares the Deployment's environment.
  const char* format = std::getenv("CORRAL_LOG_FORMAT");
  setupLogging(LogLevel::Warning, format != nullptr && std::string_view(format) == "json"
                                      ? LogFormat::Json
                                      : LogFormat::Text);
  try {
    return OneOff(request).run(*executable, inherited);
  } catch (const std::exception& error) {
    std::cerr << "corral run: " << printable(error.what()) << '\n';
    return kExitFailure;
  }
}

}  // namespace corral
