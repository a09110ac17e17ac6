#pragma once

#include <string>

namespace corral {

/// How a child ended, decoded from a wait status (folly's ProcessReturnCode).
struct ExitStatus {
  enum class Kind { Exited, Signaled };
  Kind kind = Kind::Exited;
  int code = 0;  ///< exit code, or signal number when Signaled

  static ExitStatus fromWaitStatus(int status);
  static ExitStatus exited(int code) { return {Kind::Exited, code}; }
  static ExitStatus signaled(int signo) { return {Kind::Signaled, signo}; }

  bool signaledBy(int signo) const { return kind == Kind::Signaled && code == signo; }
  bool exitedWith(int c) const { return kind == Kind::Exited && code == c; }
  /// "exit code 3", "killed by SIGKILL".
  std::string str() const;
};

/// "SIGTERM" for 15; "signal 64" for numbers without a name.
std::string signalName(int signo);

}  // namespace corral
