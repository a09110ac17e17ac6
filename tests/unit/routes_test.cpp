#include "admin/routes.hpp"

#include <catch2/catch.hpp>

namespace corral {
namespace {

HttpResponse route(std::string_view method, std::string_view target, const SupervisorStatus& s,
                   const Metrics& m) {
  return routeAdmin(method, target, {s, m, 0});
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
  const HttpResponse r = route("GET", "/metrics", running(2, 3, 3), m);
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; version=0.0.4");
  CHECK_THAT(r.body, Catch::Contains("corral_workers{state=\"ready\"} 2\n"));
  CHECK_THAT(r.body, Catch::Contains("corral_worker_spawns_total 5\n"));
  CHECK_THAT(r.body, Catch::Contains("corral_worker_forks_total 4\n"));
  CHECK_THAT(r.body, Catch::Contains("corral_worker_exits_total{reason=\"crash\"} 2\n"));
  CHECK_THAT(r.body, Catch::Contains("corral_orphans_reaped_total 7\n"));
  CHECK_THAT(r.body, Catch::Contains("corral_listen_queue_connections 0\n"));
  CHECK_THAT(r.body, Catch::Contains("corral_state{state=\"running\"} 1\n"));
  CHECK_THAT(r.body, Catch::Contains("# TYPE corral_worker_exits_total counter\n"));
}

}  // namespace
}  // namespace corral
