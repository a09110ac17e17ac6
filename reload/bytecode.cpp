#include "reload/bytecode.hpp"

#include <filesystem>
#include <system_error>

namespace corral {

void forgetBytecode(const std::string& source) {
  namespace fs = std::filesystem;
  const fs::path path(source);
  if (path.extension() != ".py") return;
  const std::string prefix = path.stem().string() + ".";
  std::error_code error;
  for (fs::directory_iterator it(path.parent_path() / "__pycache__", error), end;
       !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with(prefix) && name.ends_with(".pyc")) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);
    }
  }
}

}  // namespace corral
