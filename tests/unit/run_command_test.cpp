#include "runtime/run_command.hpp"

#include <catch2/catch.hpp>

#include "config/config_error.hpp"

using corral::ConfigError;
using corral::parseRunArgs;
using Args = std::vector<std::string>;

TEST_CASE("corral run: options before the command, the command's own after it") {
  CHECK(parseRunArgs({"--", "alembic", "upgrade", "head"}).argv ==
        Args{"alembic", "upgrade", "head"});
  CHECK_FALSE(parseRunArgs({"--", "alembic"}).group_signals);
  SECTION("-- may be left out before a command that is not an option") {
    CHECK(parseRunArgs({"ls", "-l", "--", "x"}).argv == Args{"ls", "-l", "--", "x"});
  }
  SECTION("--group-signals, or tini's -g") {
    const auto request = parseRunArgs({"--group-signals", "--", "sh", "-c", "sleep 9"});
    CHECK(request.group_signals);
    CHECK(request.argv == Args{"sh", "-c", "sleep 9"});
    CHECK(parseRunArgs({"-g", "true"}).group_signals);
  }
  SECTION("after --, everything is the command's") {
    CHECK(parseRunArgs({"--", "--group-signals"}).argv == Args{"--group-signals"});
  }
}

TEST_CASE("corral run: no command, or an unknown option, is a usage error") {
  for (const Args& args : {Args{}, Args{"--"}, Args{"--group-signals"}}) {
    CHECK_THROWS_WITH(parseRunArgs(args),
                      "no command to run; usage: corral run [--group-signals] -- CMD [ARGS...]");
  }
  CHECK_THROWS_AS(parseRunArgs({"-s", "--", "true"}), ConfigError);
  CHECK_THROWS_WITH(parseRunArgs({"--group", "--", "true"}),
                    "unknown option '--group'; options go before '--', the command after it");
}
