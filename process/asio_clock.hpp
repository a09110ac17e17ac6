#pragma once

#include <boost/asio/io_context.hpp>

#include "supervisor/clock.hpp"

namespace corral {

/// The real clock: steady time and asio::steady_timer on corral's single io_context.
class AsioClock final : public Clock {
 public:
  explicit AsioClock(boost::asio::io_context& io) : io_(io) {}
  TimePoint now() const override;
  std::unique_ptr<Timer> createTimer(std::function<void()> on_fire) override;

 private:
  boost::asio::io_context& io_;
};

}  // namespace corral
