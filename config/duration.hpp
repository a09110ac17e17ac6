#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace corral {

using Duration = std::chrono::milliseconds;

/// Parses "30", "0.5", "500ms", "30s", "2m", "1h". Plain numbers are seconds.
/// Throws ConfigError with a message naming `what` (e.g. "--timeout") on bad input.
Duration parseDuration(std::string_view text, std::string_view what);

/// Renders a duration for logs and messages: "500ms", "30s", "2m30s".
std::string formatDuration(Duration d);

}  // namespace corral
