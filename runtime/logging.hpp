#pragma once

#include "config/config.hpp"

namespace corral {

/// corral's log: one line per event on stderr, synchronous and single-threaded like the rest of
/// corral (an async logger's thread would also receive signals meant for the loop). Lines are
/// text or JSON (--log-format), each written whole in one write(2), so that the workers' lines,
/// which go to the same stderr, never split one; on the journal they carry sd-daemon priority
/// prefixes.
void setupLogging(LogLevel level, LogFormat format);

}  // namespace corral
