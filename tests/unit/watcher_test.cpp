// The --reload watcher against real inotify and a real io_context: a save is one report after
// the quiet time, new folders are watched, filtered files and folders report nothing.

#include "reload/watcher.hpp"

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "process/asio_clock.hpp"

namespace corral {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class Tree {
 public:
  Tree() {
    std::string pattern = (fs::temp_directory_path() / "corral-watch-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    root_ = fs::canonical(pattern);
  }
  ~Tree() {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  std::string path(const std::string& relative = "") const {
    return relative.empty() ? root_.string() : (root_ / relative).string();
  }
  std::string write(const std::string& relative, const std::string& text = "x = 1\n") const {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
    return path(relative);
  }

 private:
  fs::path root_;
};

struct Fixture {
  Tree tree;
  boost::asio::io_context io;
  AsioClock clock{io};
  std::vector<std::vector<std::string>> reports;
  Watcher watcher{io, clock, FileFilter({}, {}), 20ms,
                  [this](std::vector<std::string> paths) { reports.push_back(std::move(paths)); }};

  /// Runs the loop until a report comes, or `limit` passes.
  void runUntilReport(std::chrono::milliseconds limit = 5000ms) {
    const auto before = reports.size();
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (reports.size() == before && std::chrono::steady_clock::now() < deadline) {
      io.run_for(10ms);
      io.restart();
    }
  }
  /// Runs the loop for `time`, whatever comes.
  void runFor(std::chrono::milliseconds time) {
    io.run_for(time);
    io.restart();
  }
};

TEST_CASE("A burst of writes and a rename is one report, once quiet", "[unit][watcher]") {
  Fixture f;
  const std::string app = f.tree.write("app.py");
  f.watcher.watchTree(f.tree.path());
  CHECK(f.watcher.folders() == 1);
  for (int i = 0; i < 20; ++i) f.tree.write("app.py", "x = " + std::to_string(i) + "\n");
  f.tree.write(".app.py.swp");  // an editor's save: a swap file, a new file renamed over
  const std::string fresh = f.tree.write("new.py.tmp");
  fs::rename(fresh, f.tree.path("app.py"));
  f.runUntilReport();
  REQUIRE(f.reports.size() == 1);
  CHECK(f.reports[0] == std::vector<std::string>{app});
  f.runFor(100ms);
  CHECK(f.reports.size() == 1);
}

TEST_CASE("A folder created later is watched, files already in it reported", "[unit][watcher]") {
  Fixture f;
  f.watcher.watchTree(f.tree.path());
  fs::create_directories(f.tree.path("pkg/sub"));
  const std::string early = f.tree.write("pkg/sub/early.py");
  f.runUntilReport();
  REQUIRE(f.reports.size() == 1);
  CHECK(f.reports[0] == std::vector<std::string>{early});
  CHECK(f.watcher.folders() == 3);
  const std::string late = f.tree.write("pkg/sub/late.py");
  f.runUntilReport();
  REQUIRE(f.reports.size() == 2);
  CHECK(f.reports[1] == std::vector<std::string>{late});
}

TEST_CASE("Filtered files and folders report nothing", "[unit][watcher]") {
  Fixture f;
  fs::create_directories(f.tree.path(".git"));
  f.watcher.watchTree(f.tree.path());
  CHECK(f.watcher.folders() == 1);
  f.tree.write("notes.txt");
  f.tree.write("__pycache__/app.cpython-311.pyc");
  f.tree.write(".git/index");
  f.tree.write("node_modules/x/index.py");
  f.runFor(200ms);
  CHECK(f.reports.empty());
  CHECK(f.watcher.folders() == 1);
}

TEST_CASE("A watched file is reported whatever its name, in a folder not watched otherwise",
          "[unit][watcher]") {
  Fixture f;
  const std::string env = f.tree.write("config/.env", "A=1\n");
  f.watcher.watchFile(env);
  f.tree.write("config/other.py");  // the folder is not a tree: only the file counts
  f.tree.write("config/.env.new", "A=2\n");
  fs::rename(f.tree.path("config/.env.new"), env);
  f.runUntilReport();
  REQUIRE(f.reports.size() == 1);
  CHECK(f.reports[0] == std::vector<std::string>{env});
}

TEST_CASE("Deleting a file counts; a watched folder removed is forgotten", "[unit][watcher]") {
  Fixture f;
  const std::string gone = f.tree.write("pkg/gone.py");
  f.watcher.watchTree(f.tree.path());
  CHECK(f.watcher.folders() == 2);
  fs::remove_all(f.tree.path("pkg"));
  f.runUntilReport();
  REQUIRE(f.reports.size() == 1);
  CHECK(f.reports[0].front() == gone);
  f.runFor(50ms);
  CHECK(f.watcher.folders() == 1);
}

}  // namespace
}  // namespace corral
