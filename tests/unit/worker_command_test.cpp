#include "supervisor/worker_command.hpp"

#include <catch2/catch.hpp>

#include "worker/shim.hpp"

namespace corral {
namespace {

using namespace std::chrono_literals;

Config sampleConfig() {
  Config c;
  c.app = "examples.app:app";
  c.python = "/usr/bin/python3";
  c.timeout = 30s;
  c.timeout_keep_alive = 5s;
  return c;
}

TEST_CASE("WorkerCommand runs the embedded shim with the interpreter", "[unit][worker]") {
  const Config c = sampleConfig();
  const WorkerCommand command(c, {3, 4}, {"PATH=/usr/bin", "HOME=/root"});
  const SpawnSpec spec = command.specFor(1);
  CHECK(spec.slot == 1);
  CHECK(spec.executable == "/usr/bin/python3");
  REQUIRE(spec.args.size() == 2);
  CHECK(spec.args[0] == "-c");
  CHECK(spec.args[1] == kWorkerShim);
  CHECK(spec.args[1].starts_with("# corral worker"));
}

TEST_CASE("WorkerCommand keeps corral's own variables from workers", "[unit][worker]") {
  const Config c = sampleConfig();
  const WorkerCommand command(c, {3},
                              {"PATH=/usr/bin", "CORRAL_WORKERS=4", "NOTIFY_SOCKET=/run/x",
                               "LISTEN_FDS=1", "LISTEN_PID=1", "WATCHDOG_USEC=1", "APP_SETTING=x"});
  const auto env = command.specFor(0).env;
  CHECK(std::count(env.begin(), env.end(), "PATH=/usr/bin") == 1);
  CHECK(std::count(env.begin(), env.end(), "APP_SETTING=x") == 1);
  for (const auto& entry : env) {
    INFO(entry);
    CHECK_FALSE(entry.starts_with("NOTIFY_SOCKET="));
    CHECK_FALSE(entry.starts_with("LISTEN_"));
    CHECK_FALSE(entry.starts_with("WATCHDOG_"));
    CHECK_FALSE(entry.starts_with("CORRAL_"));
  }
}

TEST_CASE("Worker settings JSON", "[unit][worker]") {
  Config c = sampleConfig();
  SECTION("defaults leave optional uvicorn settings out") {
    const std::string json = WorkerCommand(c, {3, 5}, {}).settingsJson(0);
    CHECK(json ==
          R"({"app": "examples.app:app", "app_dir": ".", "factory": false, "slot": 0, )"
          R"("sockets": [3, 5], "heartbeat_interval": 7.5, "uvicorn": {"lifespan": "auto", )"
          R"("http": "auto", "loop": "auto", "backlog": 2048, "timeout_keep_alive": 5, )"
          R"("root_path": "", "log_level": "info", "access_log": true}})");
  }
  SECTION("options the user set are passed with uvicorn's names") {
    c.limit_concurrency = 50;
    c.proxy_headers = false;
    c.forwarded_allow_ips = "10.0.0.1,\"x\"";
    c.factory = true;
    const std::string json = WorkerCommand(c, {3}, {}).settingsJson(2);
    CHECK_THAT(json, Catch::Contains(R"("factory": true, "slot": 2)"));
    CHECK_THAT(json, Catch::Contains(R"("limit_concurrency": 50)"));
    CHECK_THAT(json, Catch::Contains(R"("proxy_headers": false)"));
    CHECK_THAT(json, Catch::Contains(R"("forwarded_allow_ips": "10.0.0.1,\"x\"")"));
  }
}

TEST_CASE("jsonString escapes", "[unit][worker]") {
  CHECK(jsonString("plain") == "\"plain\"");
  CHECK(jsonString("a\"b\\c\n\t") == R"("a\"b\\c\n\t")");
  CHECK(jsonString(std::string("\x01", 1)) == R"("\u0001")");
}

}  // namespace
}  // namespace corral
