#include "supervisor/backoff.hpp"

#include <algorithm>

namespace corral {

std::chrono::milliseconds Backoff::onCrash(std::optional<TimePoint> ready_at, TimePoint now) {
  if (ready_at && now - *ready_at >= kStablePeriod) streak_ = 0;
  ++streak_;
  if (streak_ == 1) return std::chrono::milliseconds::zero();
  // 100ms, 200ms, 400ms, ... ; the shift is bounded so it cannot overflow.
  const auto doublings = std::min(streak_ - 2, 16);
  return std::min(kCap, std::chrono::milliseconds(kInitial.count() << doublings));
}

}  // namespace corral
