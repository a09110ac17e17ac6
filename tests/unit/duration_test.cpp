#include "config/duration.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "config/config.hpp"

using corral::ConfigError;
using corral::Duration;
using corral::formatDuration;
using corral::parseDuration;

TEST_CASE("parseDuration reads plain seconds and suffixed values", "[unit][duration]") {
  const auto [text, millis] = GENERATE(table<std::string, long long>({
      {"30", 30'000},
      {"0", 0},
      {"007", 7'000},
      {"0.5", 500},
      {".5", 500},
      {"1.", 1'000},
      {"1.500", 1'500},
      {"0.001", 1},
      {"500ms", 500},
      {"0ms", 0},
      {"30s", 30'000},
      {"1.5s", 1'500},
      {"2m", 120'000},
      {"0.25m", 15'000},
      {"1h", 3'600'000},
      {"0.5h", 1'800'000},
      {"2m30s", 150'000},
      {"1h30m", 5'400'000},
      {"1s500ms", 1'500},
      {"1h0.5s", 3'600'500},
      {"8760h", 31'536'000'000},
  }));
  CAPTURE(text);
  CHECK(parseDuration(text, "--timeout") == Duration{millis});
}

TEST_CASE("parseDuration rejects bad durations with a reason", "[unit][duration]") {
  const auto [text, reason] = GENERATE(table<std::string, std::string>({
      {"", "expected a duration such as 30, 0.5, 500ms, 30s, 2m or 1h"},
      {"abc", "expected a duration"},
      {"s", "expected a duration"},
      {".", "expected a duration"},
      {"+5", "expected a duration"},
      {"5 s", "expected a duration"},
      {"5s ", "expected a duration"},
      {" 5", "expected a duration"},
      {"1.2.3", "expected a duration"},
      {"1m30", "expected a duration"},
      {"-5", "must not be negative"},
      {"-1s", "must not be negative"},
      {"5x", "unknown unit 'x'; use ms, s, m or h"},
      {"5S", "unknown unit 'S'"},
      {"1d", "unknown unit 'd'"},
      {"1e3", "unknown unit 'e'"},
      {"5sec", "unknown unit 'sec'"},
      {"0.0001", "finer than a millisecond"},
      {"1.5ms", "finer than a millisecond"},
      {"0.00000001h", "finer than a millisecond"},
      {"8761h", "too long; the limit is 8760h (one year)"},
      {"8760h1ms", "too long"},
      {"99999999999999999999999999s", "too long"},
      {"31536000001ms", "too long"},
  }));
  CAPTURE(text);
  try {
    parseDuration(text, "--timeout");
    FAIL("accepted '" << text << "'");
  } catch (const ConfigError& error) {
    CHECK_THAT(error.what(), Catch::Contains(reason));
    CHECK_THAT(error.what(), Catch::StartsWith("--timeout '" + text + "': "));
  }
}

TEST_CASE("parseDuration messages name the flag or the variable", "[unit][duration]") {
  CHECK_THROWS_WITH(parseDuration("5x", "--graceful-timeout"),
                    "--graceful-timeout '5x': unknown unit 'x'; use ms, s, m or h");
  CHECK_THROWS_WITH(
      parseDuration("soon", "CORRAL_TIMEOUT"),
      "CORRAL_TIMEOUT='soon': expected a duration such as 30, 0.5, 500ms, 30s, 2m or 1h");
  // A newline in the input must not split the one-line message.
  CHECK_THROWS_WITH(parseDuration("5\n", "CORRAL_TIMEOUT"),
                    "CORRAL_TIMEOUT='5\\x0a': expected a duration such as 30, 0.5, 500ms, 30s, "
                    "2m or 1h");
}

TEST_CASE("formatDuration renders compact human text", "[unit][duration]") {
  const auto [millis, text] = GENERATE(table<long long, std::string>({
      {0, "0s"},
      {1, "1ms"},
      {500, "500ms"},
      {999, "999ms"},
      {1'000, "1s"},
      {1'001, "1.001s"},
      {1'010, "1.01s"},
      {1'500, "1.5s"},
      {30'000, "30s"},
      {60'000, "1m"},
      {61'500, "1m1.5s"},
      {150'000, "2m30s"},
      {3'600'000, "1h"},
      {3'600'500, "1h0.5s"},
      {5'400'000, "1h30m"},
      {90'061'001, "25h1m1.001s"},
      {-500, "-500ms"},
      {-150'000, "-2m30s"},
  }));
  CHECK(formatDuration(Duration{millis}) == text);
}

TEST_CASE("formatDuration output parses back to the same duration", "[unit][duration]") {
  const long long millis = GENERATE(0LL, 1LL, 999LL, 1'000LL, 1'234LL, 59'999LL, 60'000LL,
                                    3'599'999LL, 3'600'001LL, 86'400'000LL, 31'536'000'000LL);
  const Duration duration{millis};
  CAPTURE(formatDuration(duration));
  CHECK(parseDuration(formatDuration(duration), "--timeout") == duration);
}
