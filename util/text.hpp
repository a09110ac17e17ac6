#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace corral {

// Text helpers: the one home for trimming, splitting, case and whole-string numbers. Whatever
// they read (kernel files, headers, user input) is not trusted to parse.

/// `text` without leading and trailing spaces, tabs and line ends.
std::string_view trim(std::string_view text);

/// The parts between separators, empty ones included.
std::vector<std::string_view> split(std::string_view text, char separator);

/// The non-empty space-separated parts of the trimmed text.
std::vector<std::string_view> words(std::string_view text);

/// `parts` with `separator` between them.
std::string join(const std::vector<std::string>& parts, std::string_view separator);

/// `text` in ASCII lower case.
std::string lower(std::string_view text);

/// True if `a` and `b` are equal but for ASCII case.
bool iequals(std::string_view a, std::string_view b);

/// "1 worker", "2 workers".
std::string plural(long long count, std::string_view noun);

/// "SIGTERM" for 15; "signal 64" for numbers without a name.
std::string signalName(int signo);

/// The whole of `text` as a number; nullopt for anything else: an empty string, a sign where
/// `Int` has none, leading or trailing spaces, a value out of range.
template <typename Int>
std::optional<Int> parseInt(std::string_view text) {
  Int value{};
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

}  // namespace corral
