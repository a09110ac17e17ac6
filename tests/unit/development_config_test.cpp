// --reload, its options and --env-file, as the command line and CORRAL_* variables give them.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "config/config.hpp"
#include "config/exit_codes.hpp"

namespace corral {
namespace {

namespace fs = std::filesystem;
using Env = std::map<std::string, std::string>;

class Folder {
 public:
  Folder() {
    std::string pattern = (fs::temp_directory_path() / "corral-dev-config-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    root_ = fs::canonical(pattern);
    fs::create_directories(root_ / "bin");
    std::ofstream(root_ / "bin/python3") << "#!/bin/sh\n";
    fs::permissions(root_ / "bin/python3", fs::perms::owner_all);
  }
  ~Folder() {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
  Folder(const Folder&) = delete;
  Folder& operator=(const Folder&) = delete;

  std::string path(const std::string& relative) const { return (root_ / relative).string(); }
  std::string write(const std::string& relative, const std::string& text) const {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
    return path(relative);
  }

  ParseOutcome parse(std::vector<std::string> args, Env env = {}) {
    env.try_emplace("PATH", path("bin"));
    std::vector<const char*> argv{"corral"};
    for (const auto& arg : args) argv.push_back(arg.c_str());
    argv.push_back("app:app");
    const EnvLookup lookup = [env](const std::string& name) -> std::optional<std::string> {
      const auto found = env.find(name);
      return found == env.end() ? std::nullopt : std::optional(found->second);
    };
    std::ostringstream out;
    err.str("");
    return parseCommandLine(static_cast<int>(argv.size()), argv.data(), lookup, out, err);
  }

  std::ostringstream err;

 private:
  fs::path root_;
};

TEST_CASE("Under --reload: one worker unless told otherwise, watching the app directory",
          "[unit][config][reload]") {
  Folder f;
  const auto outcome = f.parse({"--reload", "--app-dir", f.path("")}, {{"WEB_CONCURRENCY", "8"}});
  REQUIRE(outcome.config);
  CHECK(outcome.config->reload);
  CHECK(outcome.config->workers == 1);  // WEB_CONCURRENCY is production's
  CHECK(outcome.config->workers_reason == "--reload");
  CHECK(outcome.config->reload_dirs == std::vector{fs::canonical(f.path("")).string()});
  CHECK(outcome.config->reload_delay == Duration(30));
  CHECK(outcome.config->admin_bind.has_value());

  const auto three = f.parse({"--reload", "-w", "3"});
  REQUIRE(three.config);
  CHECK(three.config->workers == 3);
  const auto from_env = f.parse({}, {{"CORRAL_RELOAD", "true"}, {"CORRAL_WORKERS", "2"}});
  REQUIRE(from_env.config);
  CHECK(from_env.config->reload);
  CHECK(from_env.config->workers == 2);
}

TEST_CASE("The options --reload-dir, -include, -exclude and -delay", "[unit][config][reload]") {
  Folder f;
  fs::create_directories(f.path("src"));
  fs::create_directories(f.path("lib"));
  const auto outcome = f.parse({"--reload", "--reload-dir", f.path("src"), "--reload-dir",
                                f.path("lib/../lib"), "--reload-include", "*.html",
                                "--reload-exclude", "tests/*", "--reload-delay", "200ms"});
  REQUIRE(outcome.config);
  CHECK(outcome.config->reload_dirs == std::vector{f.path("src"), f.path("lib")});
  CHECK(outcome.config->reload_includes == std::vector<std::string>{"*.html"});
  CHECK(outcome.config->reload_excludes == std::vector<std::string>{"tests/*"});
  CHECK(outcome.config->reload_delay == Duration(200));
  const auto listed =
      f.parse({"--reload"}, {{"CORRAL_RELOAD_DIR", f.path("src") + ":" + f.path("lib")},
                             {"CORRAL_RELOAD_INCLUDE", "*.html, *.txt"}});
  REQUIRE(listed.config);
  CHECK(listed.config->reload_dirs.size() == 2);
  CHECK(listed.config->reload_includes == std::vector<std::string>{"*.html", "*.txt"});
}

TEST_CASE("Bad --reload input: one line naming it, exit 2", "[unit][config][reload]") {
  Folder f;
  CHECK(f.parse({"--reload", "--reload-dir", f.path("missing")}).exit_code == kExitUsage);
  CHECK(f.err.str() == "corral: error: --reload-dir '" + f.path("missing") +
                           "': no such directory; --reload watches folders that exist\n");
  CHECK(f.parse({"--reload-dir", f.path("")}).exit_code == kExitUsage);
  CHECK(f.err.str() == "corral: error: --reload-dir '" + f.path("") + "': needs --reload too\n");
  CHECK(f.parse({"--reload", "--reload-delay", "soon"}).exit_code == kExitUsage);
  CHECK(f.err.str().starts_with("corral: error: --reload-delay 'soon': "));
}

TEST_CASE("An --env-file is read at start, and a mistake in it is a usage error",
          "[unit][config][envfile]") {
  Folder f;
  const std::string env = f.write("app.env", "export A=1\nB='two words' # comment\n");
  const auto outcome = f.parse({"--env-file", env});
  REQUIRE(outcome.config);
  CHECK(outcome.config->env_file == env);
  CHECK(outcome.config->env_file_entries == std::vector<std::string>{"A=1", "B=two words"});

  CHECK(f.parse({"--env-file", f.path("none.env")}).exit_code == kExitUsage);
  CHECK(f.err.str() == "corral: error: --env-file '" + f.path("none.env") + "': no such file\n");
  const std::string bad = f.write("bad.env", "A=1\nB=\"open\n");
  CHECK(f.parse({"--env-file", bad}).exit_code == kExitUsage);
  CHECK(f.err.str().starts_with("corral: error: --env-file '" + bad + "' line 2: "));
}

}  // namespace
}  // namespace corral
