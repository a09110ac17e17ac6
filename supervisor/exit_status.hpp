#pragma once

#include <string>

namespace corral {

/// How a child ended (folly's ProcessReturnCode); the Reaper decodes it from a wait status.
struct ExitStatus {
  enum class Kind { Exited, Signaled };
  Kind kind = Kind::Exited;
  int code = 0;  ///< exit code, or signal number when Signaled

  static ExitStatus exited(int code) { return {Kind::Exited, code}; }
  static ExitStatus signaled(int signo) { return {Kind::Signaled, signo}; }

  bool signaledBy(int signo) const { return kind == Kind::Signaled && code == signo; }
  bool exitedWith(int c) const { return kind == Kind::Exited && code == c; }
  /// "exit code 3", "killed by SIGKILL".
  std::string str() const;
};

}  // namespace corral
