#pragma once

#include <charconv>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace corral {

// Text helpers. Every file read with these is written by the kernel (or a fixture imitating
// it), but a container runtime can mount anything at these paths, so nothing is trusted to
// parse.

/// The whole file; nullopt when it cannot be opened.
std::optional<std::string> readFile(const std::filesystem::path& path);

/// `text` without leading and trailing spaces, tabs and line ends.
std::string_view trim(std::string_view text);

/// The parts between separators, empty ones included.
std::vector<std::string_view> split(std::string_view text, char separator);

/// The non-empty space-separated parts of the trimmed text.
std::vector<std::string_view> words(std::string_view text);

/// The whole of `text` as a number; nullopt for anything else, including an empty string.
template <typename Int>
std::optional<Int> parseInt(std::string_view text) {
  Int value{};
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

/// `absolute` below `root`.
std::filesystem::path under(const std::filesystem::path& root,
                            const std::filesystem::path& absolute);

}  // namespace corral
