#pragma once

#include <filesystem>
#include <string>

#include "config/inputs.hpp"

namespace corral {

/// corral's own executable (/proc/self/exe); empty if it cannot be read.
std::filesystem::path ownExecutable();

/// The absolute path of the interpreter for the workers: --python (a path, or a name looked up
/// on PATH), else $VIRTUAL_ENV/bin/python, else the python beside `self` when `self` is in a
/// virtualenv's bin/ (corral installed from its wheel), else python3 on PATH. A relative
/// --python path is taken from `base` (--chdir) when it is not empty. Throws ConfigError when
/// none is usable.
std::string resolvePython(const Inputs& inputs, const std::string& base = "",
                          const std::filesystem::path& self = ownExecutable());

}  // namespace corral
