#pragma once

#include <chrono>
#include <optional>

#include "supervisor/clock.hpp"

namespace corral {

/// Restart delay for one worker slot. The first crash is answered at once (a single crash
/// should cost no more than the respawn itself); each further crash in a row doubles the
/// delay, up to a cap. A worker that served for the stable period clears the streak.
class Backoff {
 public:
  static constexpr std::chrono::milliseconds kInitial{100};
  static constexpr std::chrono::milliseconds kCap{10'000};
  static constexpr std::chrono::milliseconds kStablePeriod{10'000};

  /// Records a crash of a worker that became ready at `ready_at` (never, if empty) and returns
  /// how long to wait before the next spawn.
  std::chrono::milliseconds onCrash(std::optional<TimePoint> ready_at, TimePoint now);

  /// Crashes in the current streak.
  int streak() const { return streak_; }

 private:
  int streak_ = 0;
};

}  // namespace corral
