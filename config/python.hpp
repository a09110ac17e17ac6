#pragma once

#include <string>

#include "config/inputs.hpp"

namespace corral {

/// The absolute path of the interpreter for the workers: --python (a path, or a name looked up
/// on PATH), else $VIRTUAL_ENV/bin/python, else python3 on PATH. A relative --python path is
/// taken from `base` (--chdir) when it is not empty. Throws ConfigError when none is usable.
std::string resolvePython(const Inputs& inputs, const std::string& base = "");

}  // namespace corral
