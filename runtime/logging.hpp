#pragma once

#include "config/config.hpp"

namespace corral {

/// corral's log: one line per event on stderr, synchronous and single-threaded like the rest of
/// corral (an async logger's thread would also receive signals meant for the loop).
void setupLogging(LogLevel level);

}  // namespace corral
