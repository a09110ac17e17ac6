// Which files count for --reload and which folders are watched: uvicorn's defaults and
// pathlib's matching.

#include "reload/file_filter.hpp"

#include <catch2/catch.hpp>

namespace corral {
namespace {

TEST_CASE("pathMatches matches the last components, as PurePath.match", "[unit][reload]") {
  CHECK(pathMatches("/app/main.py", "*.py"));
  CHECK(pathMatches("/app/templates/a.html", "templates/*.html"));
  CHECK_FALSE(pathMatches("/app/other/a.html", "templates/*.html"));
  CHECK(pathMatches("/app/x.py", "/app/*.py"));
  CHECK_FALSE(pathMatches("/srv/app/x.py", "/app/*.py"));  // absolute: the whole path
  CHECK(pathMatches("/app/.hidden.py", "*.py"));           // no special dot rule, as fnmatch
  CHECK_FALSE(pathMatches("/app/main.pyc", "*.py"));
  CHECK(pathMatches("/app/tests", "./tests"));
}

TEST_CASE("By default *.py counts, but not dot-files, compiled files, swap files or backups",
          "[unit][reload]") {
  const FileFilter filter({}, {});
  CHECK(filter.counts("/app/main.py"));
  CHECK(filter.counts("/app/pkg/mod.py"));
  CHECK_FALSE(filter.counts("/app/.main.py.swp"));
  CHECK_FALSE(filter.counts("/app/.#main.py"));
  CHECK_FALSE(filter.counts("/app/main.pyc"));
  CHECK_FALSE(filter.counts("/app/main.py~"));
  CHECK_FALSE(filter.counts("/app/4913"));  // vim's test file
  CHECK_FALSE(filter.counts("/app/notes.txt"));
  CHECK(filter.describeIncludes() == "*.py");
}

TEST_CASE("Folders of no code of the app's own are not watched", "[unit][reload]") {
  const FileFilter filter({}, {});
  CHECK(filter.watchesFolder("/app"));
  CHECK(filter.watchesFolder("/app/pkg"));
  for (const char* folder : {"/app/.git", "/app/.venv", "/app/__pycache__", "/app/venv",
                             "/app/node_modules", "/app/x.egg-info", "/app/.mypy_cache"}) {
    INFO(folder);
    CHECK_FALSE(filter.watchesFolder(folder));
  }
}

TEST_CASE("FileFilter: --reload-include and --reload-exclude add to the defaults and undo them",
          "[unit][reload]") {
  const FileFilter filter({"*.html", ".env"}, {"tests/*", "*.py", "generated"});
  CHECK(filter.counts("/app/templates/index.html"));
  CHECK(filter.counts("/app/.env"));           // a name included as such wins, as in uvicorn
  CHECK_FALSE(filter.counts("/app/main.py"));  // excluding *.py drops the default include
  CHECK_FALSE(filter.counts("/app/tests/page.html"));
  CHECK_FALSE(filter.watchesFolder("/app/generated"));
  CHECK_FALSE(filter.watchesFolder("/app/tests/fixtures"));  // a folder matches tests/* too
  CHECK(filter.watchesFolder("/app/src"));
}

}  // namespace
}  // namespace corral
