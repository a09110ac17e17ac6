#pragma once

#include <string>

#include "config/inputs.hpp"

namespace corral {

/// The absolute path of the interpreter for the workers: --python (a path, or a name looked up
/// on PATH), else $VIRTUAL_ENV/bin/python, else python3 on PATH. Throws ConfigError when none
/// is usable.
std::string resolvePython(const Inputs& inputs);

}  // namespace corral
