#pragma once

namespace corral {

/// corral's exit codes; the README's "Exit codes" table documents the same values.
enum ExitCode : int {
  kExitOk = 0,            ///< clean stop (SIGTERM drain, SIGQUIT), --help, --version
  kExitFailure = 1,       ///< runtime failure: bind refused, spawn failed, internal error
  kExitUsage = 2,         ///< bad flag, value, environment variable or interpreter
  kExitBootFailure = 3,   ///< the app failed to import or its lifespan startup failed
  kExitInterrupted = 130  ///< stopped by SIGINT (Ctrl-C), as shells report 128+2
};

}  // namespace corral
