#include "config/size.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "config/config_error.hpp"

using corral::ConfigError;
using corral::formatSize;
using corral::parseSize;

namespace {

constexpr std::uint64_t kMi = std::uint64_t{1} << 20;
constexpr std::uint64_t kGi = 1024 * kMi;

TEST_CASE("parseSize reads bytes, SI and binary units", "[unit][size]") {
  const auto [text, bytes] = GENERATE(table<std::string, std::uint64_t>({
      {"1048576", 1'048'576},
      {"1", 1},
      {"2k", 2'000},
      {"300M", 300'000'000},
      {"1G", 1'000'000'000},
      {"2T", 2'000'000'000'000},
      {"1Ki", 1'024},
      {"512Mi", 512 * kMi},
      {"1Gi", kGi},
      {"3Ti", 3 * kGi * 1024},
      {"15Ei", 15ULL << 60},
      {"18446744073709551615", 18'446'744'073'709'551'615ULL},
  }));
  CAPTURE(text);
  CHECK(parseSize(text, "--worker-memory-budget") == bytes);
}

TEST_CASE("parseSize takes fractions as Kubernetes does, rounding up to a byte", "[unit][size]") {
  const auto [text, bytes] = GENERATE(table<std::string, std::uint64_t>({
      {"1.5Gi", 1536 * kMi},
      {"0.5Mi", 512 * 1024},
      {"1.25G", 1'250'000'000},
      {"2.0", 2},
      {"1.5", 2},
      {"0.001k", 1},
      {"0.1Ki", 103},  // 102.4 bytes
      {"15.999999999Ei", (15ULL << 60) + 1152921503453925472ULL},
  }));
  CAPTURE(text);
  CHECK(parseSize(text, "--max-worker-memory") == bytes);
}

TEST_CASE("parseSize rejects bad sizes naming the input", "[unit][size]") {
  const auto [text, reason] = GENERATE(table<std::string, std::string>({
      {"", "expected a size such as 512Mi, 1.5Gi, 300M or 1048576 (bytes)"},
      {"Mi", "expected a size"},
      {" 1Gi", "expected a size"},
      {"+1Gi", "expected a size"},
      {".5Gi", "expected a size"},
      {"1.Gi", "expected a size"},
      {"-1Gi", "must not be negative"},
      {"0", "must be greater than zero"},
      {"0Mi", "must be greater than zero"},
      {"0.0Gi", "must be greater than zero"},
      {"1.0000000001Gi", "too many decimals"},
      {"1.5.1Gi", "unknown unit '.1Gi'"},
      {"512m", "unknown unit 'm'; use k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti"},
      {"512MB", "unknown unit 'MB'"},
      {"1K", "unknown unit 'K'"},
      {"1gi", "unknown unit 'gi'"},
      {"1Gi ", "unknown unit 'Gi '"},
      {"16Ei", "too large"},
      {"15.9999999999Ei", "too many decimals"},
      {"18446744073709551616", "too large"},
      {"18446744073709551615.5", "too large"},
      {"99999999999999999999999Ki", "too large"},
  }));
  CAPTURE(text);
  try {
    (void)parseSize(text, "--worker-memory-budget");
    FAIL("no ConfigError for '" << text << "'");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("--worker-memory-budget '" + text + "': " + reason));
  }
}

TEST_CASE("parseSize names an environment variable as NAME='value'", "[unit][size]") {
  CHECK_THROWS_WITH(parseSize("12x", "CORRAL_WORKER_MEMORY_BUDGET"),
                    Catch::StartsWith("CORRAL_WORKER_MEMORY_BUDGET='12x': unknown unit 'x'"));
  CHECK_THROWS_WITH(parseSize("1\nGi", "--worker-memory-budget"),
                    Catch::StartsWith("--worker-memory-budget '1\\x0aGi'"));
}

TEST_CASE("formatSize picks the largest exact unit", "[unit][size]") {
  CHECK(formatSize(512 * kMi) == "512Mi");
  CHECK(formatSize(kGi) == "1Gi");
  CHECK(formatSize(1536 * kMi) == "1536Mi");
  CHECK(formatSize(300'000'000) == "300M");
  CHECK(formatSize(1'000) == "1k");
  CHECK(formatSize(1'023) == "1023");
  CHECK(formatSize(0) == "0");
  CHECK(parseSize(formatSize(123'456'789'000), "x") == 123'456'789'000);
}

}  // namespace
