#include "util/files.hpp"

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

}  // namespace corral
