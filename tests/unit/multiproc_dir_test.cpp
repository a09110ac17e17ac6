#include "process/multiproc_dir.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

namespace corral {
namespace {

namespace fs = std::filesystem;

TEST_CASE("MultiprocDir does what prometheus_client asks of a process manager", "[unit][worker]") {
  const fs::path dir =
      fs::temp_directory_path() / ("corral-multiproc-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "sub");
  const auto touch = [&](const std::string& name) { std::ofstream(dir / name) << "x"; };
  for (const char* name :
       {"counter_41.db", "gauge_livesum_41.db", "gauge_liveall_41.db", "gauge_livemostrecent_41.db",
        "gauge_all_41.db", "gauge_livesum_410.db", "histogram_41.db", "gauge_livesum_42.db",
        "notes.txt", "sub/counter_1.db"}) {
    touch(name);
  }
  const MultiprocDir multiproc(dir.string());
  const auto present = [&](const std::string& name) { return fs::exists(dir / name); };

  SECTION("a dead worker loses its live gauges, and only those") {
    multiproc.markDead(41);
    CHECK_FALSE(present("gauge_livesum_41.db"));
    CHECK_FALSE(present("gauge_liveall_41.db"));
    CHECK_FALSE(present("gauge_livemostrecent_41.db"));
    CHECK(present("counter_41.db"));
    CHECK(present("gauge_all_41.db"));
    CHECK(present("histogram_41.db"));
    CHECK(present("gauge_livesum_410.db"));
    CHECK(present("gauge_livesum_42.db"));
  }
  SECTION("at start, every metrics file of the folder goes, nothing else") {
    CHECK(multiproc.clear() == 8);
    CHECK(present("notes.txt"));
    CHECK(present("sub/counter_1.db"));
    CHECK_FALSE(present("counter_41.db"));
  }
  SECTION("the variables, as prometheus_client reads them") {
    const EnvLookup none = [](const std::string&) { return std::optional<std::string>(); };
    CHECK_FALSE(MultiprocDir::fromEnvironment(none));
    const EnvLookup old_name = [](const std::string& name) {
      return name == "prometheus_multiproc_dir" ? std::optional<std::string>("/x") : std::nullopt;
    };
    CHECK(MultiprocDir::fromEnvironment(old_name)->path() == "/x");
  }
  CHECK_FALSE(MultiprocDir((dir / "missing").string()).clear());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace corral
