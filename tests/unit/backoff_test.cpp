#include "supervisor/backoff.hpp"

#include <catch2/catch.hpp>

namespace corral {
namespace {

using namespace std::chrono_literals;

TEST_CASE("Backoff: first crash at once, then doubling up to the cap", "[unit][backoff]") {
  Backoff backoff;
  const TimePoint t0{};
  const std::vector<std::chrono::milliseconds> expected{0ms,    100ms,  200ms,  400ms,    800ms,
                                                        1600ms, 3200ms, 6400ms, 10'000ms, 10'000ms};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("crash " << i + 1);
    CHECK(backoff.onCrash(std::nullopt, t0) == expected[i]);
  }
  for (int i = 0; i < 100; ++i) backoff.onCrash(std::nullopt, t0);
  CHECK(backoff.onCrash(std::nullopt, t0) == Backoff::kCap);  // no overflow after many
}

TEST_CASE("Backoff: a worker that served for the stable period resets it", "[unit][backoff]") {
  Backoff backoff;
  const TimePoint t0{};
  backoff.onCrash(std::nullopt, t0);
  backoff.onCrash(std::nullopt, t0);
  CHECK(backoff.streak() == 2);

  SECTION("ready long enough") {
    CHECK(backoff.onCrash(t0, t0 + Backoff::kStablePeriod) == 0ms);
    CHECK(backoff.streak() == 1);
  }
  SECTION("ready, but not for long") {
    CHECK(backoff.onCrash(t0, t0 + Backoff::kStablePeriod - 1ms) == 200ms);
    CHECK(backoff.streak() == 3);
  }
}

}  // namespace
}  // namespace corral
