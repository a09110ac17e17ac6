#include "admin/routes.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

#include "admin/status.hpp"

namespace corral {
namespace {

HttpResponse route(std::string_view method, std::string_view target, const SupervisorStatus& s,
                   const Metrics& m) {
  return routeAdmin(method, target, {s, m, 0, {}, {}, nullptr});
}

SupervisorStatus running(int ready, int alive, int target) {
  SupervisorStatus s;
  s.state = State::Running;
  s.ready = ready;
  s.alive = alive;
  s.target = target;
  s.required = target;
  s.workers_reason = "auto: 2 workers from cgroup";
  return s;
}

TEST_CASE("/healthz is 200 while corral supervises, 503 once it stops", "[unit][admin]") {
  const Metrics m;
  CHECK(route("GET", "/healthz", running(0, 1, 2), m).status == 200);
  CHECK(route("GET", "/healthz", running(2, 2, 2), m).body ==
        "{\"state\":\"running\",\"workers\":{\"ready\":2,\"alive\":2,\"total\":2,\"required\":2},"
        "\"workers_reason\":\"auto: 2 workers from cgroup\"}\n");
  // Every worker gone, respawns on their way (a backoff after repeated crashes): alive.
  CHECK(route("GET", "/healthz", running(0, 0, 2), m).status == 200);
  SupervisorStatus draining = running(1, 1, 2);
  draining.state = State::DrainStop;
  CHECK(route("GET", "/healthz", draining, m).status == 200);
  draining.alive = 0;  // stopping, and nothing left to stop: on its way out
  CHECK(route("GET", "/healthz", draining, m).status == 503);
  SupervisorStatus stopped = running(0, 0, 2);
  stopped.state = State::Stopped;
  CHECK(route("GET", "/healthz", stopped, m).status == 503);
  SupervisorStatus starting = running(0, 0, 2);  // the worker template boots first
  starting.state = State::Starting;
  CHECK(route("GET", "/healthz", starting, m).status == 200);
}

TEST_CASE("A failed reload shows on both endpoints", "[unit][admin]") {
  const Metrics m;
  SupervisorStatus s = running(2, 2, 2);
  s.reload_error = "SyntaxError: invalid syntax";
  for (const char* path : {"/healthz", "/ready"}) {
    const HttpResponse r = route("GET", path, s, m);
    CHECK(r.status == 200);  // the old workers serve on
    CHECK_THAT(r.body, Catch::Contains("\"reload_error\":\"SyntaxError: invalid syntax\""));
  }
}

TEST_CASE("/ready needs the required workers and no drain", "[unit][admin]") {
  const Metrics m;
  CHECK(route("GET", "/ready", running(2, 2, 2), m).status == 200);
  const HttpResponse partial = route("GET", "/ready", running(1, 2, 2), m);
  CHECK(partial.status == 503);
  CHECK_THAT(partial.body, Catch::Contains("\"reason\":\"1 of 2 required workers ready\""));

  SupervisorStatus lowered = running(1, 2, 2);
  lowered.required = 1;
  CHECK(route("GET", "/ready", lowered, m).status == 200);

  SupervisorStatus draining = running(2, 2, 2);
  draining.state = State::DrainStop;
  draining.draining_reason = "SIGTERM";
  const HttpResponse drain = route("GET", "/ready", draining, m);
  CHECK(drain.status == 503);
  CHECK_THAT(drain.body, Catch::Contains("draining: SIGTERM"));
}

TEST_CASE("Admin routing: methods, paths, queries", "[unit][admin]") {
  const Metrics m;
  const SupervisorStatus s = running(1, 1, 1);
  CHECK(route("HEAD", "/ready", s, m).status == 200);
  CHECK(route("GET", "/ready?verbose=1", s, m).status == 200);
  CHECK(route("POST", "/ready", s, m).status == 405);
  CHECK(route("DELETE", "/metrics", s, m).status == 405);
  CHECK(route("POST", "/healthz", s, m).headers ==
        std::vector<std::pair<std::string, std::string>>{{"Allow", "GET, HEAD"}});
  CHECK(route("GET", "/", s, m).status == 404);
  CHECK(route("GET", "/readyz", s, m).status == 404);
}

TEST_CASE("/metrics renders Prometheus text", "[unit][admin]") {
  Metrics m;
  m.worker_spawns = 5;
  m.worker_forks = 4;
  m.worker_exits["crash"] = 2;
  m.orphans_reaped = 7;
  m.reloads = 3;
  m.worker_startup.observe(0.07);
  m.retired_requests[0] = 40;
  SupervisorStatus s = running(2, 3, 3);
  s.starting = 1;
  WorkerStatus w0;
  w0.slot = 0;
  w0.resident_bytes = 1000;
  w0.requests_served = 2;
  w0.requests_in_flight = 1;
  w0.heartbeat_age_seconds = 0.5;
  WorkerStatus w0_successor = w0;
  w0_successor.resident_bytes = 500;
  w0_successor.heartbeat_age_seconds = 0.25;
  WorkerStatus w1;
  w1.slot = 1;
  s.workers = {w0, w0_successor, w1};
  AdminView view{s,
                 m,
                 11,
                 {{"http://127.0.0.1:8000", 4, 128}, {"unix:/run/a \"b\"", 0, 64}},
                 ProcessStats{1.7e9, 0.25, 4096, 8192, 9, 1024},
                 nullptr};
  const HttpResponse r = routeAdmin("GET", "/metrics", view);
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; version=0.0.4; charset=utf-8");
  const auto has = [&](const std::string& line) { CHECK_THAT(r.body, Catch::Contains(line)); };
  has("corral_build_info{version=\"" CORRAL_VERSION "\"} 1\n");
  has("corral_workers{state=\"starting\"} 1\n");
  has("corral_workers{state=\"ready\"} 2\n");
  has("corral_workers{state=\"draining\"} 0\n");
  has("corral_workers_desired 3\n");
  has("corral_worker_spawns_total 5\n");
  has("corral_worker_forks_total 4\n");
  has("corral_worker_exits_total{reason=\"crash\"} 2\n");
  // Every known reason is there from the start, at 0, in snake_case.
  has("corral_worker_exits_total{reason=\"killed_at_drain_deadline\"} 0\n");
  has("corral_worker_exits_total{reason=\"oom\"} 0\n");
  has("corral_orphans_reaped_total 7\n");
  has("corral_reloads_total 3\n");
  has("# TYPE corral_reloads_total counter\n");
  has("corral_listen_queue_connections{listener=\"http://127.0.0.1:8000\"} 4\n");
  has("corral_listen_queue_limit{listener=\"http://127.0.0.1:8000\"} 128\n");
  has("corral_listen_queue_limit{listener=\"unix:/run/a \\\"b\\\"\"} 64\n");
  has("corral_state{state=\"running\"} 1\n");
  has("# TYPE corral_worker_exits_total counter\n");
  // A slot's two workers (one replacing the other) add up; retired workers' requests stay.
  has("corral_worker_resident_memory_bytes{worker=\"0\"} 1500\n");
  has("corral_worker_heartbeat_age_seconds{worker=\"0\"} 0.25\n");
  has("corral_worker_requests_total{worker=\"0\"} 44\n");
  has("corral_worker_requests_in_flight{worker=\"0\"} 2\n");
  has("corral_worker_requests_total{worker=\"1\"} 0\n");
  has("# TYPE corral_worker_startup_seconds histogram\n");
  has("corral_worker_startup_seconds_bucket{le=\"0.05\"} 0\n");
  has("corral_worker_startup_seconds_bucket{le=\"0.1\"} 1\n");
  has("corral_worker_startup_seconds_bucket{le=\"+Inf\"} 1\n");
  has("corral_worker_startup_seconds_count 1\n");
  has("corral_drain_duration_seconds_count 0\n");
  has("corral_admin_requests_total 11\n");
  has("process_open_fds 9\n");
  has("process_max_fds 1024\n");
  has("process_resident_memory_bytes 4096\n");
  has("process_cpu_seconds_total 0.25\n");
  CHECK_THAT(r.body, !Catch::Contains("corral_generation"));
  CHECK_THAT(r.body, !Catch::Contains("state=\"desired\""));
}

TEST_CASE("/status describes corral and every worker", "[unit][admin]") {
  Metrics m;
  SupervisorStatus s = running(1, 1, 1);
  s.uptime_seconds = 12.3456;
  WorkerStatus w;
  w.slot = 0;
  w.pid = 42;
  w.state = "ready";
  w.restarts = 2;
  w.last_exit = "killed by SIGKILL";
  w.last_exit_reason = "crash";
  w.resident_bytes = 1 << 20;
  w.requests_served = 9;
  s.workers = {w};
  const json::Object settings{
      {"app", json::Object{{"value", "main:app"}, {"origin", "command line"}}},
      {"graceful-timeout", json::Object{{"value", "30s"}, {"origin", "default"}}}};
  const HttpResponse r = routeAdmin("GET", "/status", {s, m, 0, {}, {}, &settings});
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  const auto body = boost::json::parse(r.body).as_object();
  CHECK(body.at("version") == CORRAL_VERSION);
  CHECK(body.at("state") == "running");
  CHECK(body.at("uptime_seconds").as_double() == Approx(12.346));
  CHECK(body.at("workers_reason") == "auto: 2 workers from cgroup");
  CHECK(body.at("settings") == settings);
  const auto& worker = body.at("workers").at(0).as_object();
  CHECK(worker.at("pid") == 42);
  CHECK(worker.at("state") == "ready");
  CHECK(worker.at("restarts") == 2);
  CHECK(worker.at("last_exit").at("reason") == "crash");
  CHECK(worker.at("resident_memory_bytes") == 1 << 20);
  CHECK(worker.at("requests_served") == 9);
  CHECK(worker.at("heartbeat_age_seconds").is_null());
}

}  // namespace
}  // namespace corral
