#include "config/size.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <optional>

#include "config/config_error.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

struct SizeUnit {
  std::string_view suffix;
  std::uint64_t bytes;
};

constexpr std::uint64_t kOne = 1;
constexpr auto kBinaryUnits = std::to_array<SizeUnit>({{"Ei", kOne << 60},
                                                       {"Pi", kOne << 50},
                                                       {"Ti", kOne << 40},
                                                       {"Gi", kOne << 30},
                                                       {"Mi", kOne << 20},
                                                       {"Ki", kOne << 10}});
constexpr auto kDecimalUnits = std::to_array<SizeUnit>({{"E", 1'000'000'000'000'000'000},
                                                        {"P", 1'000'000'000'000'000},
                                                        {"T", 1'000'000'000'000},
                                                        {"G", 1'000'000'000},
                                                        {"M", 1'000'000},
                                                        {"k", 1'000}});

constexpr std::string_view kExpectedSize =
    "expected a size such as 512Mi, 1.5Gi, 300M or 1048576 (bytes)";
constexpr std::string_view kUnits =
    "use k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024)";
// Nine decimals already name a fraction of a byte of a gigabyte; more only risk overflow.
constexpr std::size_t kMaxFractionDigits = 9;

std::optional<std::uint64_t> unitBytes(std::string_view suffix) {
  if (suffix.empty()) return 1;
  for (const auto& units : {kBinaryUnits, kDecimalUnits}) {
    for (const auto& unit : units) {
      if (unit.suffix == suffix) return unit.bytes;
    }
  }
  return std::nullopt;
}

std::size_t leadingDigits(std::string_view text) {
  return static_cast<std::size_t>(
      std::find_if(text.begin(), text.end(), [](char c) { return c < '0' || c > '9'; }) -
      text.begin());
}

// ceil(fraction / 10^digits * unit): the bytes of ".5Gi".
std::uint64_t fractionBytes(std::string_view digits, std::uint64_t unit) {
  __extension__ using Wide = unsigned __int128;  // up to 10^9 * 2^60: beyond 64 bits
  const auto numerator = static_cast<Wide>(parseInt<std::uint64_t>(digits).value_or(0)) * unit;
  Wide denominator = 1;
  for (std::size_t i = 0; i < digits.size(); ++i) denominator *= 10;
  return static_cast<std::uint64_t>((numerator + denominator - 1) / denominator);
}

}  // namespace

std::uint64_t parseSize(std::string_view text, std::string_view what) {
  if (text.starts_with('-')) failInput(what, text, "must not be negative");
  const std::size_t whole_digits = leadingDigits(text);
  if (whole_digits == 0) failInput(what, text, kExpectedSize);
  std::string_view rest = text.substr(whole_digits);
  std::string_view fraction;
  if (rest.starts_with('.')) {
    fraction = rest.substr(1, leadingDigits(rest.substr(1)));
    if (fraction.empty()) failInput(what, text, kExpectedSize);
    if (fraction.size() > kMaxFractionDigits) failInput(what, text, "too many decimals");
    rest = rest.substr(1 + fraction.size());
  }
  const auto unit = unitBytes(rest);
  if (!unit)
    failInput(what, text, "unknown unit '" + std::string(rest) + "'; " + std::string(kUnits));
  const auto whole = parseInt<std::uint64_t>(text.substr(0, whole_digits));
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  if (!whole || *whole > kMax / *unit) failInput(what, text, "too large");
  const std::uint64_t part = fraction.empty() ? 0 : fractionBytes(fraction, *unit);
  const std::uint64_t bytes = *whole * *unit;
  if (part > kMax - bytes) failInput(what, text, "too large");
  if (bytes + part == 0) failInput(what, text, "must be greater than zero");
  return bytes + part;
}

std::string formatSize(std::uint64_t bytes) {
  for (const auto& units : {kBinaryUnits, kDecimalUnits}) {
    for (const auto& unit : units) {
      if (bytes >= unit.bytes && bytes % unit.bytes == 0) {
        return std::to_string(bytes / unit.bytes) + std::string(unit.suffix);
      }
    }
  }
  return std::to_string(bytes);
}

}  // namespace corral
