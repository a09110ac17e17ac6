#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace corral {

using TimePoint = std::chrono::steady_clock::time_point;

/// A one-shot timer. Re-enabling a pending timer moves its deadline; destroying it cancels it.
class Timer {
 public:
  virtual ~Timer() = default;
  /// Fires the callback once, `delay` from now, unless disabled or re-enabled first.
  virtual void enable(std::chrono::milliseconds delay) = 0;
  virtual void disable() = 0;
  virtual bool enabled() const = 0;
};

/// The source of time. The supervisor only sees this seam, so its state machine runs under
/// simulated time in unit tests (Envoy's TimeSource + Dispatcher::createTimer).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  virtual std::unique_ptr<Timer> createTimer(std::function<void()> on_fire) = 0;
};

}  // namespace corral
