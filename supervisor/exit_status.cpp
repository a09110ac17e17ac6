#include "supervisor/exit_status.hpp"

#include <sys/wait.h>

#include <cstring>

namespace corral {

ExitStatus ExitStatus::fromWaitStatus(int status) {
  if (WIFSIGNALED(status)) return signaled(WTERMSIG(status));
  return exited(WEXITSTATUS(status));
}

std::string ExitStatus::str() const {
  if (kind == Kind::Signaled) return "killed by " + signalName(code);
  return "exit code " + std::to_string(code);
}

std::string signalName(int signo) {
  const char* abbrev = ::sigabbrev_np(signo);
  if (abbrev == nullptr) return "signal " + std::to_string(signo);
  return std::string("SIG") + abbrev;
}

}  // namespace corral
