#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "supervisor/process_spawner.hpp"

namespace corral {

/// One child to start: what to exec and what it keeps.
struct LaunchSpec {
  std::string executable;          ///< absolute path
  std::vector<std::string> argv;   ///< argv[0] included
  std::vector<std::string> env;    ///< "NAME=value"
  std::vector<int> keep_fds;       ///< open in the child at the same numbers, beside stdio
  std::optional<WorkerUser> user;  ///< the identity the child switches to before exec
  /// Make the child's process group the foreground group of the terminal on stdin, as tini
  /// does for its one child (`corral run`); workers never take the terminal.
  bool take_terminal = false;
};

/// fork and exec, with the child made clean the way tini makes its child: no signal blocked,
/// every disposition at its default, its own process group (the terminal's foreground one
/// with `take_terminal`), PR_SET_PDEATHSIG(SIGKILL) so that
/// nothing outlives corral, and no descriptor but stdio and `keep_fds`. Forked workers get the
/// same hygiene from the worker template, in the shim's Template.become_worker
/// (worker/shim.py); a change to one belongs in the other, and tests/integration/
/// test_forkserver.py::test_forked_and_spawned_workers_start_equally_clean compares them.
///
/// Returns the pid once the child has exec'd. If the child failed before exec (setuid refused,
/// exec of a missing file), the errno it reported, and the pid of the child, which has exited
/// and is left for the Reaper.
SpawnResult launch(const LaunchSpec& spec);

/// Closes every descriptor but those in `sorted_keep` (ascending), with no allocation: safe
/// between fork and exec.
void closeFdsExcept(const std::vector<int>& sorted_keep);

}  // namespace corral
