#pragma once

#include <iosfwd>
#include <vector>

#include "config/config.hpp"

namespace corral {

/// --check-config, once the settings are valid: prints the notices, runs the interpreter check
/// (process/interpreter_check.hpp) and says what it found. Starts nothing, binds nothing.
/// Returns kExitOk, or kExitUsage when the interpreter cannot run the workers.
int checkConfig(const Config& config, const std::vector<Notice>& notices, std::ostream& out,
                std::ostream& err);

/// Logs the notices parsing found, once logging is set up.
void logNotices(const std::vector<Notice>& notices);

}  // namespace corral
