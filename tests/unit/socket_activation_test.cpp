#include "config/socket_activation.hpp"

#include <catch2/catch.hpp>
#include <map>

namespace corral {
namespace {

EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST_CASE("Socket activation: LISTEN_FDS for this process", "[unit][systemd]") {
  SECTION("unset: none") {
    CHECK(activatedSockets(envOf({}), 42).empty());
  }
  SECTION("another process's: ignored") {
    CHECK(activatedSockets(envOf({{"LISTEN_PID", "41"}, {"LISTEN_FDS", "2"}}), 42).empty());
  }
  SECTION("ours, without names") {
    const auto sockets = activatedSockets(envOf({{"LISTEN_PID", "42"}, {"LISTEN_FDS", "2"}}), 42);
    REQUIRE(sockets.size() == 2);
    CHECK(sockets[0].fd == 3);
    CHECK(sockets[1].fd == 4);
    CHECK(sockets[1].name == "unknown");
  }
  SECTION("ours, with names") {
    const auto sockets = activatedSockets(
        envOf({{"LISTEN_PID", "42"}, {"LISTEN_FDS", "2"}, {"LISTEN_FDNAMES", "http:admin"}}), 42);
    REQUIRE(sockets.size() == 2);
    CHECK(sockets[0].name == "http");
    CHECK(sockets[1].name == "admin");
  }
}

TEST_CASE("Socket activation: malformed variables are rejected", "[unit][systemd]") {
  CHECK_THROWS_WITH(activatedSockets(envOf({{"LISTEN_PID", "x"}, {"LISTEN_FDS", "1"}}), 42),
                    Catch::Contains("LISTEN_PID='x'"));
  CHECK_THROWS_WITH(activatedSockets(envOf({{"LISTEN_PID", "42"}, {"LISTEN_FDS", "-1"}}), 42),
                    Catch::Contains("LISTEN_FDS='-1'"));
  CHECK_THROWS_WITH(
      activatedSockets(
          envOf({{"LISTEN_PID", "42"}, {"LISTEN_FDS", "2"}, {"LISTEN_FDNAMES", "http"}}), 42),
      Catch::Contains("1 names for 2 sockets"));
}

}  // namespace
}  // namespace corral
