#include "config/python.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <string_view>
#include <system_error>

#include "config/config_error.hpp"
#include "util/files.hpp"

namespace corral {
namespace {

constexpr std::string_view kDefaultSearchPath = "/usr/local/bin:/usr/bin:/bin";

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
  const auto found =
      findExecutable(name, variable ? std::string_view(variable->text) : kDefaultSearchPath);
  if (!found) return std::nullopt;
  return absolutePath(*found);
}

std::string checkInterpreterFile(const Input& input, std::string path, const std::string& base) {
  if (!base.empty() && !path.starts_with('/')) path = base + "/" + path;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) fail(input, "no such file");
  if (S_ISDIR(info.st_mode)) fail(input, "is a directory; pass the interpreter itself");
  if (!isExecutableFile(path)) fail(input, "not an executable file");
  return absolutePath(path);
}

// A wheel installs corral into a virtualenv's bin/ beside its python, and a Docker image runs
// it from there with the venv on PATH but VIRTUAL_ENV unset (uv's and FastAPI's guides set
// only PATH). A venv is a directory holding pyvenv.cfg (PEP 405).
std::optional<std::string> ownVirtualenvPython(const std::filesystem::path& self) {
  const std::filesystem::path bin = self.parent_path();
  std::error_code error;
  if (bin.empty() || !std::filesystem::exists(bin.parent_path() / "pyvenv.cfg", error)) {
    return std::nullopt;
  }
  const std::string python = (bin / "python").string();
  if (!isExecutableFile(python)) {
    throw ConfigError("corral runs from the virtualenv " + printable(bin.parent_path().string()) +
                      ", whose bin/python is missing or not executable; repair it or pass " +
                      "--python /path/to/python");
  }
  return absolutePath(python);
}

}  // namespace

std::filesystem::path ownExecutable() {
  std::error_code error;
  auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::filesystem::path() : self;
}

std::string resolvePython(const Inputs& inputs, const std::string& base,
                          const std::filesystem::path& self) {
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
  if (auto python = ownVirtualenvPython(self)) return *python;
  if (auto found = searchPath("python3", inputs)) return *found;
  throw ConfigError("python3 not found on PATH; " + std::string(kInstall));
}

}  // namespace corral
