#include "supervisor/exit_status.hpp"

#include "util/text.hpp"

namespace corral {

std::string ExitStatus::str() const {
  if (oom_killed) return "killed by the kernel's OOM killer (" + *oom_killed + ")";
  if (kind == Kind::Signaled) return "killed by " + signalName(code);
  return "exit code " + std::to_string(code);
}

}  // namespace corral
