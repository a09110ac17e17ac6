#pragma once

#include <optional>
#include <string>

namespace corral {

/// How a child ended (folly's ProcessReturnCode); the Reaper decodes it from a wait status.
struct ExitStatus {
  enum class Kind { Exited, Signaled };
  Kind kind = Kind::Exited;
  int code = 0;  ///< exit code, or signal number when Signaled
  /// Set when the kernel's OOM killer ended it: the limit it enforced ("cgroup memory limit
  /// 512Mi"), as the spawner found it.
  std::optional<std::string> oom_killed;

  static ExitStatus exited(int code) { return {Kind::Exited, code, std::nullopt}; }
  static ExitStatus signaled(int signo) { return {Kind::Signaled, signo, std::nullopt}; }

  bool signaledBy(int signo) const { return kind == Kind::Signaled && code == signo; }
  bool exitedWith(int c) const { return kind == Kind::Exited && code == c; }
  /// "exit code 3", "killed by SIGKILL", "killed by the kernel's OOM killer (...)".
  std::string str() const;
};

}  // namespace corral
