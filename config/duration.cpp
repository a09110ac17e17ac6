#include "config/duration.hpp"

#include <cctype>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "config/config.hpp"

namespace corral {
namespace {

using Millis = std::int64_t;

constexpr Millis kSecond = 1000;
constexpr Millis kMinute = 60 * kSecond;
constexpr Millis kHour = 60 * kMinute;
// Timers add durations to clock readings; a year is far beyond any sane timeout and keeps that
// arithmetic nowhere near overflow.
constexpr Millis kMaxMillis = 8760 * kHour;

constexpr std::string_view kExpected = "expected a duration such as 30, 0.5, 500ms, 30s, 2m or 1h";
constexpr std::string_view kTooLong = "too long; the limit is 8760h (one year)";
constexpr std::string_view kTooFine = "finer than a millisecond, which is corral's resolution";

[[noreturn]] void fail(std::string_view what, std::string_view text, std::string_view reason) {
  failInput(what, text, reason);
}

std::optional<Millis> unitMillis(std::string_view unit) {
  if (unit == "ms") return 1;
  if (unit == "s") return kSecond;
  if (unit == "m") return kMinute;
  if (unit == "h") return kHour;
  return std::nullopt;
}

bool isDigit(char c) {
  return std::isdigit(static_cast<unsigned char>(c)) != 0;
}
bool isAlpha(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0;
}

std::string_view takeWhile(std::string_view text, std::size_t& pos, bool (*pred)(char)) {
  const std::size_t start = pos;
  while (pos < text.size() && pred(text[pos])) ++pos;
  return text.substr(start, pos - start);
}

// One "<number><unit>" term such as "1.5s"; the unit is empty for a bare number.
struct Term {
  std::string_view whole;
  std::string_view fraction;
  std::string_view unit;
};

std::optional<Term> takeTerm(std::string_view text, std::size_t& pos) {
  Term term;
  term.whole = takeWhile(text, pos, isDigit);
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    term.fraction = takeWhile(text, pos, isDigit);
  }
  if (term.whole.empty() && term.fraction.empty()) return std::nullopt;
  term.unit = takeWhile(text, pos, isAlpha);
  return term;
}

// Integer arithmetic throughout: 0.1 has no exact binary form, and a timeout must not come out
// one millisecond short.
Millis termMillis(const Term& term, Millis unit, std::string_view what, std::string_view text) {
  Millis whole = 0;
  for (const char c : term.whole) {
    whole = whole * 10 + (c - '0');
    if (whole > kMaxMillis / unit) fail(what, text, kTooLong);
  }
  std::string_view fraction = term.fraction;
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  Millis numerator = 0;
  Millis denominator = 1;
  for (const char c : fraction) {
    // Seven decimals are finer than a millisecond even in hours; stop before overflowing.
    if (denominator == 10'000'000) fail(what, text, kTooFine);
    numerator = numerator * 10 + (c - '0');
    denominator *= 10;
  }
  if (numerator * unit % denominator != 0) fail(what, text, kTooFine);
  return whole * unit + numerator * unit / denominator;
}

}  // namespace

Duration parseDuration(std::string_view text, std::string_view what) {
  if (text.empty()) fail(what, text, kExpected);
  if (text.front() == '-') fail(what, text, "must not be negative");
  Millis total = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t term_start = pos;
    const auto term = takeTerm(text, pos);
    if (!term) fail(what, text, kExpected);
    std::string_view unit_text = term->unit;
    if (unit_text.empty()) {
      // Only a lone number may omit its unit ("30"); "1m30" is more likely a typo than seconds.
      if (term_start != 0 || pos != text.size()) fail(what, text, kExpected);
      unit_text = "s";
    }
    const auto unit = unitMillis(unit_text);
    if (!unit) {
      fail(what, text, "unknown unit '" + std::string(unit_text) + "'; use ms, s, m or h");
    }
    total += termMillis(*term, *unit, what, text);
    if (total > kMaxMillis) fail(what, text, kTooLong);
  }
  return Duration{total};
}

std::string formatDuration(Duration d) {
  const Millis ms = d.count();
  if (ms < 0) {
    // The most negative value has no positive counterpart to recurse on.
    if (ms == std::numeric_limits<Millis>::min()) return std::to_string(ms) + "ms";
    return "-" + formatDuration(Duration{-ms});
  }
  if (ms == 0) return "0s";
  if (ms < kSecond) return std::to_string(ms) + "ms";
  std::string out;
  if (ms >= kHour) out += std::to_string(ms / kHour) + "h";
  if (ms % kHour >= kMinute) out += std::to_string(ms % kHour / kMinute) + "m";
  const Millis seconds = ms % kMinute / kSecond;
  const Millis millis = ms % kSecond;
  if (seconds == 0 && millis == 0) return out;
  out += std::to_string(seconds);
  if (millis != 0) {
    std::string digits = std::to_string(millis + 1000).substr(1);  // zero-padded to three
    while (digits.back() == '0') digits.pop_back();
    out += "." + digits;
  }
  return out + "s";
}

}  // namespace corral
