#include "config/python.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string_view>
#include <system_error>

#include "config/config_error.hpp"

namespace corral {
namespace {

constexpr std::string_view kDefaultSearchPath = "/usr/local/bin:/usr/bin:/bin";

bool isExecutableFile(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

// Lexical only: a virtualenv's python is a symlink, and resolving it would lose the venv.
std::string absolutePath(const std::string& path) {
  std::error_code error;
  const auto absolute = std::filesystem::absolute(path, error);
  if (error) {
    throw ConfigError("cannot make '" + printable(path) + "' absolute: " + error.message());
  }
  return absolute.lexically_normal().string();
}

std::optional<std::string> searchPath(const std::string& name, const Inputs& inputs) {
  const auto variable = inputs.variable("PATH");
  const std::string path = variable ? variable->text : std::string(kDefaultSearchPath);
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find(':', start), path.size());
    // An empty PATH entry means the current directory, as for execvp.
    std::string candidate = end == start ? "." : path.substr(start, end - start);
    candidate += "/" + name;
    if (isExecutableFile(candidate)) return absolutePath(candidate);
    start = end + 1;
  }
  return std::nullopt;
}

std::string checkInterpreterFile(const Input& input, std::string path, const std::string& base) {
  if (!base.empty() && !path.starts_with('/')) path = base + "/" + path;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) fail(input, "no such file");
  if (S_ISDIR(info.st_mode)) fail(input, "is a directory; pass the interpreter itself");
  if (!isExecutableFile(path)) fail(input, "not an executable file");
  return absolutePath(path);
}

}  // namespace

std::string resolvePython(const Inputs& inputs, const std::string& base) {
  constexpr std::string_view kInstall = "install Python 3 or pass --python /path/to/python";
  if (const auto chosen = inputs.get("--python")) {
    if (chosen->text.empty()) fail(*chosen, "expected an interpreter name or path");
    if (chosen->text.find('/') != std::string::npos) {
      return checkInterpreterFile(*chosen, chosen->text, base);
    }
    if (auto found = searchPath(chosen->text, inputs)) return *found;
    fail(*chosen, "not found on PATH; " + std::string(kInstall));
  }
  if (const auto venv = inputs.variable("VIRTUAL_ENV")) {
    const std::string python = venv->text + "/bin/python";
    if (isExecutableFile(python)) return absolutePath(python);
    fail(*venv, printable(python) + " is missing or not executable; activate a working " +
                    "virtualenv or pass --python /path/to/python");
  }
  if (auto found = searchPath("python3", inputs)) return *found;
  throw ConfigError("python3 not found on PATH; " + std::string(kInstall));
}

}  // namespace corral
