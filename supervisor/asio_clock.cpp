#include "supervisor/asio_clock.hpp"

#include <boost/asio/steady_timer.hpp>

namespace corral {
namespace {

class AsioTimer final : public Timer {
 public:
  AsioTimer(boost::asio::io_context& io, std::function<void()> on_fire)
      : timer_(io), on_fire_(std::move(on_fire)) {}

  void enable(std::chrono::milliseconds delay) override {
    timer_.expires_after(delay);
    // A generation counter tells a stale completion (cancelled by a later enable or disable,
    // but already queued) from the current one: asio may deliver either with success.
    const auto generation = ++generation_;
    enabled_ = true;
    timer_.async_wait([this, generation](const boost::system::error_code& ec) {
      if (ec || generation != generation_) return;
      enabled_ = false;
      on_fire_();
    });
  }

  void disable() override {
    ++generation_;
    enabled_ = false;
    timer_.cancel();
  }

  bool enabled() const override { return enabled_; }

 private:
  boost::asio::steady_timer timer_;
  std::function<void()> on_fire_;
  unsigned generation_ = 0;
  bool enabled_ = false;
};

}  // namespace

TimePoint AsioClock::now() const {
  return std::chrono::steady_clock::now();
}

std::unique_ptr<Timer> AsioClock::createTimer(std::function<void()> on_fire) {
  return std::make_unique<AsioTimer>(io_, std::move(on_fire));
}

}  // namespace corral
