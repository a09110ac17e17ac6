#pragma once

#include <string>

#include "config/config.hpp"
#include "config/duration.hpp"

namespace corral {

/// What --check-config learnt from the workers' interpreter.
struct InterpreterCheck {
  bool ok = false;
  std::string text;  ///< what was found, or what is wrong (may span lines)
};

/// Runs the worker shim as a worker would start (the same interpreter, environment, settings and
/// user), in its check role: it imports uvicorn, checks the internals the workers rely on and
/// that this uvicorn supports every option corral would pass (loading TLS certificates and the
/// protocol modules as a worker would), and that APP's module can be found, without importing
/// the app. Starts no worker and binds nothing. Gives up after `timeout`.
InterpreterCheck checkInterpreter(const Config& config, Duration timeout);

}  // namespace corral
