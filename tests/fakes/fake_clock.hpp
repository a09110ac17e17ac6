#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "supervisor/clock.hpp"

namespace corral::testing {

/// Simulated time: advance() fires due timers synchronously, in deadline order, ties broken by
/// the order they were enabled (Envoy's SimulatedTimeSystem).
class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return now_; }

  std::unique_ptr<Timer> createTimer(std::function<void()> on_fire) override {
    auto state = std::make_shared<State>();
    state->on_fire = std::move(on_fire);
    states_.push_back(state);
    return std::make_unique<FakeTimer>(*this, state);
  }

  void advance(std::chrono::milliseconds d) {
    const TimePoint target = now_ + d;
    while (auto due = nextDue(target)) {
      now_ = *due->deadline;
      due->deadline.reset();
      due->on_fire();
    }
    now_ = target;
  }

  /// Deadlines of enabled timers, relative to now: what a test asserts was armed.
  std::vector<std::chrono::milliseconds> pending() const {
    std::vector<std::chrono::milliseconds> result;
    for (const auto& weak : states_) {
      if (auto s = weak.lock(); s && s->deadline) {
        result.push_back(
            std::chrono::duration_cast<std::chrono::milliseconds>(*s->deadline - now_));
      }
    }
    std::sort(result.begin(), result.end());
    return result;
  }

 private:
  struct State {
    std::function<void()> on_fire;
    std::optional<TimePoint> deadline;
    unsigned long order = 0;
  };

  class FakeTimer final : public Timer {
   public:
    FakeTimer(FakeClock& clock, std::shared_ptr<State> state)
        : clock_(clock), state_(std::move(state)) {}
    void enable(std::chrono::milliseconds delay) override {
      state_->deadline = clock_.now_ + delay;
      state_->order = clock_.next_order_++;
    }
    void disable() override { state_->deadline.reset(); }
    bool enabled() const override { return state_->deadline.has_value(); }

   private:
    FakeClock& clock_;
    std::shared_ptr<State> state_;
  };

  std::shared_ptr<State> nextDue(TimePoint target) {
    std::shared_ptr<State> best;
    for (const auto& weak : states_) {
      auto s = weak.lock();
      if (!s || !s->deadline || *s->deadline > target) continue;
      if (!best || *s->deadline < *best->deadline ||
          (*s->deadline == *best->deadline && s->order < best->order)) {
        best = s;
      }
    }
    return best;
  }

  TimePoint now_{};
  unsigned long next_order_ = 0;
  std::vector<std::weak_ptr<State>> states_;
};

}  // namespace corral::testing
