#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace corral {

/// What `corral run --help` prints.
inline constexpr std::string_view kRunUsage =
    "Usage: corral run [--group-signals] -- CMD [ARGS...]\n"
    "\n"
    "Runs one command as a container's PID 1 should, as tini does: the image's ENTRYPOINT\n"
    "[\"corral\"] also runs one-off jobs (a migration: corral run -- alembic upgrade head).\n"
    "SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to CMD; orphans are\n"
    "reaped; corral exits with CMD's exit code, or 128+N if a signal N killed it. A CMD that\n"
    "is not found exits 127, one that cannot be executed 126, as in a shell.\n"
    "\n"
    "  -g, --group-signals   Pass the signals to CMD's whole process group (its children\n"
    "                        too), as tini -g does\n";

/// `corral run`'s arguments, read.
struct RunRequest {
  bool group_signals = false;
  std::vector<std::string> argv;  ///< CMD and ARGS; never empty
};

/// Reads the options before CMD ("--" ends them; so does the first argument that is not an
/// option). Throws ConfigError when there is no command or an option is unknown.
RunRequest parseRunArgs(const std::vector<std::string>& args);

/// `corral run ARGS...`.
int runCommand(const std::vector<std::string>& args);

}  // namespace corral
