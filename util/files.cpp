#include "util/files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace corral {

std::optional<std::string> readFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A fixture root must not be discarded by operator/ when joined with an absolute path.
std::filesystem::path under(const std::filesystem::path& root,
                            const std::filesystem::path& absolute) {
  return root / absolute.relative_path();
}

bool isExecutableFile(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

std::optional<std::string> findExecutable(std::string_view name, std::string_view search_path) {
  std::size_t start = 0;
  while (start <= search_path.size()) {
    const auto end = std::min(search_path.find(':', start), search_path.size());
    std::string candidate =
        end == start ? "." : std::string(search_path.substr(start, end - start));
    candidate += "/";
    candidate += name;
    if (isExecutableFile(candidate)) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace corral
