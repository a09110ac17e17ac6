#include "process/asio_clock.hpp"

#include <boost/asio/steady_timer.hpp>

namespace corral {
namespace {

// The timer's state lives in a block that the pending handler reaches through a weak
// reference. Asio does not cancel a handler that is already queued when its timer is cancelled
// or destroyed: it runs, with success. The weak reference tells it whether its timer still
// exists; the generation, whether this expiry is still the one wanted (a later enable or
// disable may have come after it was queued).
class AsioTimer final : public Timer {
 public:
  AsioTimer(boost::asio::io_context& io, std::function<void()> on_fire)
      : state_(std::make_shared<State>(io, std::move(on_fire))) {}
  AsioTimer(const AsioTimer&) = delete;
  AsioTimer& operator=(const AsioTimer&) = delete;
  ~AsioTimer() override {
    boost::system::error_code ignored;
    state_->timer.cancel(ignored);
  }

  void enable(std::chrono::milliseconds delay) override {
    state_->timer.expires_after(delay);
    const auto generation = ++state_->generation;
    state_->enabled = true;
    state_->timer.async_wait(
        [weak = std::weak_ptr<State>(state_), generation](const boost::system::error_code& ec) {
          const auto state = weak.lock();
          if (ec || !state || generation != state->generation) return;
          state->enabled = false;
          state->on_fire();
        });
  }

  void disable() override {
    ++state_->generation;
    state_->enabled = false;
    state_->timer.cancel();
  }

  bool enabled() const override { return state_->enabled; }

 private:
  struct State {
    State(boost::asio::io_context& io, std::function<void()> fire)
        : timer(io), on_fire(std::move(fire)) {}
    boost::asio::steady_timer timer;
    std::function<void()> on_fire;
    unsigned generation = 0;
    bool enabled = false;
  };
  std::shared_ptr<State> state_;
};

}  // namespace

TimePoint AsioClock::now() const {
  return std::chrono::steady_clock::now();
}

std::unique_ptr<Timer> AsioClock::createTimer(std::function<void()> on_fire) {
  return std::make_unique<AsioTimer>(io_, std::move(on_fire));
}

}  // namespace corral
