#include "config/kernel_files.hpp"

#include <fstream>
#include <sstream>

namespace corral {
namespace {

namespace fs = std::filesystem;

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

std::optional<std::string> readFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && isSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && isSpace(text.back())) text.remove_suffix(1);
  return text;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t pos = 0; pos <= text.size(); ++pos) {
    if (pos == text.size() || text[pos] == separator) {
      parts.push_back(text.substr(start, pos - start));
      start = pos + 1;
    }
  }
  return parts;
}

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  for (const auto part : split(trim(text), ' ')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// A fixture root must not be discarded by operator/ when joined with an absolute path.
fs::path under(const fs::path& root, const fs::path& absolute) {
  return root / absolute.relative_path();
}

}  // namespace corral
