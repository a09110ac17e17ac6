// AsioClock's timers against a real io_context. Run under ASan in CI: a handler that outlived
// its timer would read freed memory here.

#include "process/asio_clock.hpp"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

namespace corral {
namespace {

using namespace std::chrono_literals;

TEST_CASE("A timer fires once, after its delay", "[unit][asio]") {
  boost::asio::io_context io;
  AsioClock clock(io);
  int fired = 0;
  const auto timer = clock.createTimer([&] { ++fired; });
  timer->enable(1ms);
  CHECK(timer->enabled());
  io.run();
  CHECK(fired == 1);
  CHECK_FALSE(timer->enabled());
}

TEST_CASE("A disabled or re-enabled timer fires only for its last enable", "[unit][asio]") {
  boost::asio::io_context io;
  AsioClock clock(io);
  int fired = 0;
  const auto timer = clock.createTimer([&] { ++fired; });
  timer->enable(0ms);
  timer->disable();
  io.run();
  CHECK(fired == 0);
  io.restart();
  timer->enable(0ms);
  timer->enable(1ms);
  io.run();
  CHECK(fired == 1);
}

TEST_CASE("A timer destroyed while its expiry is already queued never fires", "[unit][asio]") {
  // Both expire in the same pass of the event loop, so both completions are queued before the
  // first runs; the first then destroys the second, whose completion Asio still delivers, with
  // success. It must find its timer gone rather than touch it.
  boost::asio::io_context io;
  AsioClock clock(io);
  std::unique_ptr<Timer> second;
  int second_fired = 0;
  bool first_fired = false;
  const auto first = clock.createTimer([&] {
    first_fired = true;
    second.reset();
  });
  second = clock.createTimer([&] { ++second_fired; });
  first->enable(0ms);
  second->enable(0ms);
  std::this_thread::sleep_for(5ms);  // both expired before the loop looks
  const std::size_t handlers = io.run();
  CHECK(first_fired);
  CHECK(second_fired == 0);
  CHECK(handlers == 2);  // the second's completion did run, and found no timer
}

TEST_CASE("A timer may destroy itself from its own callback", "[unit][asio]") {
  boost::asio::io_context io;
  AsioClock clock(io);
  std::unique_ptr<Timer> timer;
  int fired = 0;
  timer = clock.createTimer([&] {
    ++fired;
    timer.reset();
  });
  timer->enable(0ms);
  io.run();
  CHECK(fired == 1);
  CHECK(timer == nullptr);
}

}  // namespace
}  // namespace corral
