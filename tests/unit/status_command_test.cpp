#include "runtime/status_command.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

namespace corral {
namespace {

TEST_CASE("corral status prints /status as an aligned table", "[unit][admin]") {
  const auto status = boost::json::parse(R"({
    "version": "0.1.0", "state": "running", "uptime_seconds": 7384.2, "generation": 1,
    "workers_desired": 2, "workers_reason": "auto: 2 CPUs of the cgroup quota",
    "workers": [
      {"slot": 0, "pid": 31516, "generation": 1, "state": "ready", "age_seconds": 3.25,
       "restarts": 0, "last_exit": null, "resident_memory_bytes": 47185920,
       "requests_served": 1024, "requests_in_flight": 1, "heartbeat_age_seconds": 1.2},
      {"slot": 1, "pid": 7, "generation": 1, "state": "starting", "age_seconds": 0.1,
       "restarts": 12, "last_exit": {"status": "killed by SIGKILL", "reason": "crash"},
       "resident_memory_bytes": null, "requests_served": 0, "requests_in_flight": 0,
       "heartbeat_age_seconds": null}
    ]})")
                          .as_object();
  const std::string table = renderStatusTable(status);
  CHECK(table ==
        "corral 0.1.0, running, up 2h3m4s, generation 1\n"
        "workers: 2 (auto: 2 CPUs of the cgroup quota)\n"
        "\n"
        "SLOT  PID    GEN  STATE     AGE   RESTARTS  MEMORY  REQUESTS  IN FLIGHT  HEARTBEAT  "
        "LAST EXIT\n"
        "0     31516  1    ready     3.2s  0         45.0Mi  1024      1          1.2s       -\n"
        "1     7      1    starting  0.1s  12        -       0         0          -          "
        "killed by SIGKILL (crash)\n");
  // Whatever a newer or older corral sends, the table is made of what is there.
  CHECK_NOTHROW(renderStatusTable(boost::json::parse(R"({"workers": [1, {}]})").as_object()));
}

}  // namespace
}  // namespace corral
