// --reload drops CPython's cached bytecode of a changed module, which an edit in the same second
// that keeps the size would otherwise leave valid.

#include "reload/bytecode.hpp"

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace corral {
namespace {

namespace fs = std::filesystem;

TEST_CASE("forgetBytecode removes the module's cached .pyc files only", "[unit][reload]") {
  const fs::path dir =
      fs::temp_directory_path() / ("corral-bytecode-" + std::to_string(::getpid()));
  fs::create_directories(dir / "__pycache__");
  for (const char* name :
       {"main.cpython-311.pyc", "main.cpython-311.opt-1.pyc", "main.cpython-312.pyc",
        "mainly.cpython-311.pyc", "other.cpython-311.pyc", "main.cpython-311.txt"}) {
    std::ofstream(dir / "__pycache__" / name) << "x";
  }
  std::ofstream(dir / "main.py") << "x = 1\n";

  forgetBytecode((dir / "main.py").string());
  forgetBytecode((dir / "other.txt").string());         // not a module: nothing happens
  forgetBytecode((dir / "none" / "gone.py").string());  // no cache: nothing happens

  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir / "__pycache__"))
    left.push_back(entry.path().filename().string());
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{"main.cpython-311.txt", "mainly.cpython-311.pyc",
                                         "other.cpython-311.pyc"});
  fs::remove_all(dir);
}

}  // namespace
}  // namespace corral
