#pragma once

#include <chrono>
#include <optional>

#include "supervisor/clock.hpp"

namespace corral {

/// Restart delay for one worker slot. The first crash is answered at once (a single crash
/// should cost no more than the respawn itself); each further crash in a row doubles the
/// delay, up to a cap. A worker that served for the stable period clears the streak: what the
/// backoff is for is a worker that cannot start or dies as it starts, burning CPU in a loop. A
/// worker that served a while and was then killed (OOM, a hung loop, an operator's kill) is
/// replaced at once, or a lone worker's slot would stay empty for up to the cap.
class Backoff {
 public:
  static constexpr std::chrono::milliseconds kInitial{100};
  static constexpr std::chrono::milliseconds kCap{10'000};
  static constexpr std::chrono::milliseconds kStablePeriod{1'000};

  /// Records a crash of a worker that became ready at `ready_at` (never, if empty) and returns
  /// how long to wait before the next spawn.
  std::chrono::milliseconds onCrash(std::optional<TimePoint> ready_at, TimePoint now);

  /// Crashes in the current streak.
  int streak() const { return streak_; }

 private:
  int streak_ = 0;
};

}  // namespace corral
