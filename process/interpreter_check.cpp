#include "process/interpreter_check.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <string_view>

#include "process/launcher.hpp"
#include "process/worker_specs.hpp"

namespace corral {
namespace {

constexpr std::size_t kMaxDatagram = std::size_t{32} * 1024;  // the shim's MAX_DATAGRAM

// The child's status, waited for here: --check-config runs before the Reaper exists.
int waitFor(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

// Reads the shim's messages until it closes its end (it exits) or the time is up; the last
// CHECKED= or CONFIG_ERROR= wins.
struct Reading {
  std::optional<InterpreterCheck> answer;
  bool timed_out = false;
};

Reading readAnswer(int fd, Duration timeout) {
  Reading reading;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<char, kMaxDatagram> buffer{};
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      reading.timed_out = true;
      return reading;
    }
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return reading;
    const std::string_view message(buffer.data(), static_cast<std::size_t>(n));
    for (const auto& [prefix, ok] : {std::pair<std::string_view, bool>{"CHECKED=", true},
                                     std::pair<std::string_view, bool>{"CONFIG_ERROR=", false},
                                     std::pair<std::string_view, bool>{"BOOT_ERROR=", false}}) {
      if (message.starts_with(prefix)) {
        reading.answer = InterpreterCheck{ok, std::string(message.substr(prefix.size()))};
      }
    }
  }
}

}  // namespace

InterpreterCheck checkInterpreter(const Config& config, Duration timeout) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return {false,
            std::string("cannot create a channel to the interpreter: ") + std::strerror(errno)};
  }
  const WorkerSpecs specs(config, {}, currentEnvironment());
  const SpawnSpec spec = specs.specFor({.slot = 0});
  LaunchSpec launch_spec{spec.executable, {spec.executable}, spec.env, {pair[1]}, config.user};
  launch_spec.argv.insert(launch_spec.argv.end(), spec.args.begin(), spec.args.end());
  launch_spec.env.push_back("CORRAL_WORKER_SETTINGS=" + spec.settings);
  launch_spec.env.push_back("CORRAL_CONTROL_FD=" + std::to_string(pair[1]));
  launch_spec.env.emplace_back("CORRAL_WORKER_ROLE=check");
  const SpawnResult started = launch(launch_spec);
  ::close(pair[1]);
  if (!started.ok()) {
    ::close(pair[0]);
    if (started.pid > 0) waitFor(started.pid);
    return {false, "cannot run " + config.python + ": " + std::strerror(started.error)};
  }
  const Reading reading = readAnswer(pair[0], timeout);
  ::close(pair[0]);
  if (reading.timed_out) ::kill(started.pid, SIGKILL);
  const int status = waitFor(started.pid);
  if (reading.timed_out) {
    return {false, config.python + " did not finish the check within " + formatDuration(timeout) +
                       " (importing uvicorn hangs?)"};
  }
  if (reading.answer) return *reading.answer;
  return {false, config.python + " " + describeStatus(status) +
                     " before it could check anything (its output is above)"};
}

}  // namespace corral
