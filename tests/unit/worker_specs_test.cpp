#include "process/worker_specs.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
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

boost::json::object settingsOf(const WorkerSpecs& specs, WorkerRequest request) {
  return boost::json::parse(specs.settingsJson(request)).as_object();
}

TEST_CASE("WorkerSpecs runs the embedded shim with the interpreter", "[unit][worker]") {
  const Config c = sampleConfig();
  const WorkerSpecs specs(c, {3, 4}, {"PATH=/usr/bin", "HOME=/root"});
  const SpawnSpec spec = specs.specFor({.slot = 1});
  CHECK(spec.executable == "/usr/bin/python3");
  REQUIRE(spec.args.size() == 2);
  CHECK(spec.args[0] == "-c");
  CHECK(spec.args[1] == kWorkerShim);
  CHECK(spec.args[1].starts_with("# corral worker"));
}

TEST_CASE("WorkerSpecs keeps corral's own variables from workers", "[unit][worker]") {
  const Config c = sampleConfig();
  const WorkerSpecs specs(c, {3},
                          {"PATH=/usr/bin", "CORRAL_WORKERS=4", "NOTIFY_SOCKET=/run/x",
                           "LISTEN_FDS=1", "LISTEN_PID=1", "WATCHDOG_USEC=1", "APP_SETTING=x"});
  const auto env = specs.specFor({}).env;
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
    const WorkerSpecs specs(c, {3, 5}, {});
    CHECK(specs.settingsJson({}) ==
          R"({"app":"examples.app:app","app_dir":".","factory":false,"slot":0,)"
          R"("sockets":[3,5],"heartbeat_interval":7.5,"uvicorn":{"lifespan":"auto",)"
          R"("http":"auto","loop":"auto","backlog":2048,"timeout_keep_alive":5,)"
          R"("root_path":"","log_level":"info","access_log":true,"log_config":null},)"
          R"("log_format":"text"})");
  }
  SECTION("the scoreboard's descriptor is passed when there is one") {
    CHECK(settingsOf(WorkerSpecs(c, {3}, {}, 7), {}).at("scoreboard") == 7);
    CHECK_FALSE(settingsOf(WorkerSpecs(c, {3}, {}), {}).contains("scoreboard"));
  }
  SECTION("options the user set are passed with uvicorn's names") {
    c.limit_concurrency = 50;
    c.proxy_headers = false;
    c.forwarded_allow_ips = "10.0.0.1,\"x\"";
    c.factory = true;
    const auto settings = settingsOf(WorkerSpecs(c, {3}, {}), {.slot = 2, .max_requests = 1017});
    CHECK(settings.at("factory") == true);
    CHECK(settings.at("slot") == 2);
    CHECK(settings.at("max_requests") == 1017);
    const auto& uvicorn = settings.at("uvicorn").as_object();
    CHECK(uvicorn.at("limit_concurrency") == 50);
    CHECK(uvicorn.at("proxy_headers") == false);
    CHECK(uvicorn.at("forwarded_allow_ips") == "10.0.0.1,\"x\"");
  }
  SECTION("uvicorn's TLS, WebSocket and header options are passed with uvicorn's names") {
    c.ssl_certfile = "/etc/app/cert.pem";
    c.ssl_keyfile = "/etc/app/key.pem";
    c.ssl_keyfile_password = "secret";
    c.ssl_version = 17;
    c.ssl_cert_reqs = 2;
    c.ssl_ca_certs = "/etc/app/ca.pem";
    c.ssl_ciphers = "ECDHE+AESGCM";
    c.ws = "wsproto";
    c.ws_max_size = 1048576;
    c.ws_max_queue = 8;
    c.ws_ping_interval = 2500ms;
    c.ws_ping_timeout = 0ms;
    c.ws_per_message_deflate = false;
    c.headers = {{"X-Frame-Options", "DENY"}, {"X-B", ""}};
    c.server_header = false;
    c.date_header = true;
    c.h11_max_incomplete_event_size = 65536;
    const auto uvicorn = settingsOf(WorkerSpecs(c, {3}, {}), {}).at("uvicorn").as_object();
    CHECK(uvicorn.at("ssl_certfile") == "/etc/app/cert.pem");
    CHECK(uvicorn.at("ssl_keyfile") == "/etc/app/key.pem");
    CHECK(uvicorn.at("ssl_keyfile_password") == "secret");
    CHECK(uvicorn.at("ssl_version") == 17);
    CHECK(uvicorn.at("ssl_cert_reqs") == 2);
    CHECK(uvicorn.at("ssl_ca_certs") == "/etc/app/ca.pem");
    CHECK(uvicorn.at("ssl_ciphers") == "ECDHE+AESGCM");
    CHECK(uvicorn.at("ws") == "wsproto");
    CHECK(uvicorn.at("ws_max_size") == 1048576);
    CHECK(uvicorn.at("ws_max_queue") == 8);
    CHECK(uvicorn.at("ws_ping_interval") == 2.5);
    CHECK(uvicorn.at("ws_ping_timeout").is_null());  // 0: no pings, uvicorn's None
    CHECK(uvicorn.at("ws_per_message_deflate") == false);
    CHECK(boost::json::serialize(uvicorn.at("headers")) ==
          R"([["X-Frame-Options","DENY"],["X-B",""]])");
    CHECK(uvicorn.at("server_header") == false);
    CHECK(uvicorn.at("date_header") == true);
    CHECK(uvicorn.at("h11_max_incomplete_event_size") == 65536);
  }
  SECTION("an app directory that is not UTF-8 still gives valid JSON") {
    c.app_dir = "/srv/caf\xe9";
    const auto settings = settingsOf(WorkerSpecs(c, {3}, {}), {});
    CHECK(settings.at("app_dir") == "/srv/caf\xef\xbf\xbd");
  }
}

}  // namespace
}  // namespace corral
