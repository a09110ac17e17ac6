#pragma once

#include <chrono>

namespace corral {

/// After SIGABRT (faulthandler prints the stack, then the process aborts), SIGKILL follows if
/// the worker is still there: it may be stuck in the kernel.
inline constexpr std::chrono::milliseconds kKillGrace{3000};
/// A quick stop, or a worker stopped while still booting, gets this long before SIGKILL.
inline constexpr std::chrono::milliseconds kQuickGrace{1000};
/// How often a drain looks at the listen queues it waits to see empty.
inline constexpr std::chrono::milliseconds kQueuePollInterval{10};
/// How often --max-worker-memory reads the workers' resident memory.
inline constexpr std::chrono::milliseconds kMemoryCheckInterval{1000};

}  // namespace corral
