#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/inputs.hpp"

namespace corral {

/// --print-config: every setting of the option table with its effective value and where that
/// came from (the default, FILE:LINE, an environment variable, the command line), as a TOML
/// file whose comments say where each value came from. It can be read back with --config.
std::string settingsText(const Inputs& inputs, const Config& config);

/// --print-config --json: the same as one JSON object, with the warnings.
std::string settingsJson(const Inputs& inputs, const Config& config,
                         const std::vector<Notice>& notices);

}  // namespace corral
