#include "config/python.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "config/config_error.hpp"
#include "config/options.hpp"

namespace {

namespace fs = std::filesystem;
using Env = std::map<std::string, std::string>;

// A virtualenv's layout (PEP 405: pyvenv.cfg at its root) under a private temporary folder,
// with a fake python3 on a PATH of its own.
class Layout {
 public:
  Layout() {
    std::string pattern = (fs::temp_directory_path() / "corral-python-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    root_ = pattern;
    executable("path/python3");
    executable("venv/bin/python");
    executable("venv/bin/corral");
    std::ofstream(root_ / "venv/pyvenv.cfg") << "home = /usr/bin\n";
    executable("plain/corral");
  }
  ~Layout() {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;

  fs::path operator/(const std::string& relative) const { return root_ / relative; }

  void executable(const std::string& relative) const {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << "#!/bin/sh\n";
    fs::permissions(root_ / relative, fs::perms::owner_all);
  }

  std::string resolve(const fs::path& self, Env env = {}) const {
    env.emplace("PATH", (root_ / "path").string());
    const char* argv[] = {"corral", "main:app"};
    const corral::CommandLine line = corral::readCommandLine(2, argv);
    const corral::EnvLookup lookup = [&](const std::string& name) -> std::optional<std::string> {
      const auto found = env.find(name);
      return found == env.end() ? std::nullopt : std::optional(found->second);
    };
    return corral::resolvePython(corral::Inputs(line, lookup), "", self);
  }

 private:
  fs::path root_;
};

}  // namespace

TEST_CASE("corral in a virtualenv's bin/ runs the workers on that virtualenv's python") {
  const Layout layout;
  SECTION("without VIRTUAL_ENV, as a Docker image that only puts the venv on PATH") {
    CHECK(layout.resolve(layout / "venv/bin/corral") == (layout / "venv/bin/python").string());
  }
  SECTION("VIRTUAL_ENV, set by activating a virtualenv, comes first") {
    layout.executable("other/bin/python");
    CHECK(layout.resolve(layout / "venv/bin/corral", {{"VIRTUAL_ENV", layout / "other"}}) ==
          (layout / "other/bin/python").string());
  }
  SECTION("outside a virtualenv, python3 on PATH") {
    CHECK(layout.resolve(layout / "plain/corral") == (layout / "path/python3").string());
    CHECK(layout.resolve(fs::path()) == (layout / "path/python3").string());
  }
  SECTION("a virtualenv without its python is an error, not another interpreter") {
    fs::remove(layout / "venv/bin/python");
    CHECK_THROWS_WITH(layout.resolve(layout / "venv/bin/corral"),
                      "corral runs from the virtualenv " + (layout / "venv").string() +
                          ", whose bin/python is missing or not executable; repair it or pass "
                          "--python /path/to/python");
  }
}
