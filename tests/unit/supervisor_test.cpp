// The supervisor's state machine under simulated time: a FakeClock, a FakeSpawner, and exits
// and control messages fed in as the real spawner would deliver them.

#include <catch2/catch.hpp>
#include <csignal>

#include "config/exit_codes.hpp"
#include "fakes/supervisor_harness.hpp"

namespace corral {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using Signal = testing::FakeSpawner::Signal;

TEST_CASE("Starting: workers are spawned and become ready", "[unit][supervisor]") {
  Harness h;
  Supervisor& s = h.start();
  CHECK(s.state() == State::Starting);
  REQUIRE(h.spawns() == 2);
  CHECK(h.spawner.spawned[0].slot == 0);
  CHECK(h.spawner.spawned[1].slot == 1);
  CHECK(h.clock.pending() == std::vector{60'000ms, 60'000ms});  // startup timeouts

  SECTION("one READY is not enough") {
    h.ready(100);
    CHECK(s.state() == State::Starting);
    CHECK(s.status().ready == 1);
  }
  SECTION("all READY: Running, and heartbeat deadlines replace startup ones") {
    h.readyAll();
    CHECK(s.state() == State::Running);
    CHECK(s.status().ready == 2);
    CHECK(h.clock.pending() == std::vector{30'000ms, 30'000ms});
  }
  SECTION("a duplicate READY changes nothing") {
    h.readyAll();
    h.ready(100);
    CHECK(s.status().ready == 2);
  }
}

TEST_CASE("Starting: a worker not ready in time is aborted, killed and replaced",
          "[unit][supervisor]") {
  Harness h;
  h.config.startup_timeout = 5s;
  Supervisor& s = h.start();
  h.ready(101);
  h.clock.advance(5s);
  REQUIRE(h.spawner.signals == std::vector{Signal{100, SIGABRT, false}});
  h.clock.advance(3s);
  CHECK(h.spawner.signals.back() == Signal{100, SIGKILL, true});
  h.spawner.exit(100, ExitStatus::signaled(SIGKILL));
  CHECK(h.spawns() == 3);  // the first failure of a slot is replaced at once
  CHECK(h.spawner.spawned.back().slot == 0);
  CHECK(s.state() == State::Starting);
  CHECK(s.metrics().worker_exits.at("startup_timeout") == 1);
}

TEST_CASE("Starting: an app that cannot boot stops corral once", "[unit][supervisor]") {
  Harness h;
  Supervisor& s = h.start();

  SECTION("BOOT_ERROR then exit 3: exit code 3, the other worker killed") {
    h.spawner.message(100, "BOOT_ERROR=Traceback ...\nRuntimeError: boom");
    h.spawner.exit(100, ExitStatus::exited(3));
    CHECK(s.state() == State::DrainKill);
    CHECK(h.spawner.signals == std::vector{Signal{101, SIGKILL, true}});
    CHECK(h.spawns() == 2);  // no respawn
    h.spawner.exit(101, ExitStatus::signaled(SIGKILL));
    CHECK(s.state() == State::Stopped);
    CHECK(h.stopped_with == kExitBootFailure);
  }
  SECTION("exit 3 without a message is a boot failure too") {
    h.spawner.exit(100, ExitStatus::exited(3));
    h.spawner.exit(101, ExitStatus::exited(3));
    CHECK(h.stopped_with == kExitBootFailure);
  }
  SECTION("CONFIG_ERROR (no uvicorn in the interpreter) exits 2") {
    h.spawner.message(100, "CONFIG_ERROR=/usr/bin/python3 cannot import uvicorn");
    h.spawner.exit(100, ExitStatus::exited(2));
    h.spawner.exit(101, ExitStatus::exited(2));
    CHECK(h.stopped_with == kExitUsage);
  }
  SECTION("a crash by signal before any READY is respawned, not a boot failure") {
    h.spawner.exit(100, ExitStatus::signaled(SIGSEGV));
    CHECK(s.state() == State::Starting);
    CHECK(h.spawns() == 3);
  }
}

TEST_CASE("Running: crashed workers are respawned with backoff", "[unit][supervisor]") {
  Harness h;
  Supervisor& s = h.running();

  h.spawner.exit(100, ExitStatus::signaled(SIGKILL));
  REQUIRE(h.spawns() == 3);  // at once: same simulated instant
  CHECK(s.state() == State::Running);
  CHECK(s.status().ready == 1);
  CHECK(s.metrics().worker_exits.at("crash") == 1);

  // The replacement crashes before it was ever ready: 100ms, then 200ms.
  h.spawner.exit(102, ExitStatus::exited(1));
  CHECK(h.spawns() == 3);
  h.clock.advance(99ms);
  CHECK(h.spawns() == 3);
  h.clock.advance(1ms);
  REQUIRE(h.spawns() == 4);
  h.spawner.exit(103, ExitStatus::exited(1));
  h.clock.advance(199ms);
  CHECK(h.spawns() == 4);
  h.clock.advance(1ms);
  REQUIRE(h.spawns() == 5);

  SECTION("a worker that served for the stable period clears the streak") {
    h.ready(104);
    h.clock.advance(Backoff::kStablePeriod);
    h.spawner.message(104, "WATCHDOG=1");
    h.spawner.exit(104, ExitStatus::signaled(SIGKILL));
    CHECK(h.spawns() == 6);
  }
  SECTION("the other slot keeps its own streak") {
    h.spawner.exit(101, ExitStatus::signaled(SIGKILL));
    CHECK(h.spawns() == 6);
  }
}

TEST_CASE("Running: a worker without heartbeats is hung", "[unit][supervisor]") {
  Harness h;
  h.config.timeout = 4s;
  Supervisor& s = h.running();

  h.clock.advance(3s);
  h.spawner.message(100, "WATCHDOG=1");
  h.clock.advance(3s);  // 101 has been silent for 6s, 100 for 3s
  REQUIRE(h.spawner.signals == std::vector{Signal{101, SIGABRT, false}});
  CHECK(s.status().ready == 1);
  h.spawner.exit(101, ExitStatus::signaled(SIGABRT));
  CHECK(h.spawns() == 3);
  CHECK(s.metrics().worker_exits.at("hung") == 1);
  h.clock.advance(10s);  // no kill grace left over for the reaped worker
  CHECK(std::count(h.spawner.signals.begin(), h.spawner.signals.end(),
                   Signal{101, SIGKILL, true}) == 0);
}

TEST_CASE("Running: --timeout 0 disables hung detection", "[unit][supervisor]") {
  Harness h;
  h.config.timeout = 0ms;
  h.running();
  CHECK(h.clock.pending().empty());
  h.clock.advance(1h);
  CHECK(h.spawner.signals.empty());
}

TEST_CASE("Draining: SIGTERM drains within the graceful timeout", "[unit][supervisor]") {
  Harness h;
  h.config.graceful_timeout = 10s;
  Supervisor& s = h.running();

  h.signal(SIGTERM);
  CHECK(s.state() == State::DrainStop);
  CHECK(s.status().draining_reason == "SIGTERM");
  CHECK(h.spawner.signals == std::vector{Signal{100, SIGTERM, false}, Signal{101, SIGTERM, false}});
  CHECK(h.clock.pending() == std::vector{10'000ms});

  SECTION("workers that exit, even by the SIGTERM re-raised by uvicorn, are drained") {
    h.spawner.exit(100, ExitStatus::exited(0));
    h.spawner.exit(101, ExitStatus::signaled(SIGTERM));
    CHECK(s.state() == State::Stopped);
    CHECK(h.stopped_with == kExitOk);
    CHECK(s.metrics().worker_exits.at("drained") == 2);
    CHECK(h.spawns() == 2);
  }
  SECTION("stragglers are killed at the deadline, and corral still exits 0") {
    h.spawner.exit(100, ExitStatus::exited(0));
    h.clock.advance(10s);
    CHECK(h.spawner.signals.back() == Signal{101, SIGKILL, true});
    h.spawner.exit(101, ExitStatus::signaled(SIGKILL));
    CHECK(h.stopped_with == kExitOk);
  }
  SECTION("a second SIGTERM escalates to a quick stop") {
    h.signal(SIGTERM);
    CHECK(h.spawner.signals.back() == Signal{101, SIGINT, false});
    CHECK(h.clock.pending() == std::vector{1'000ms});
  }
  SECTION("nothing is respawned while draining") {
    h.spawner.exit(100, ExitStatus::signaled(SIGKILL));
    CHECK(h.spawns() == 2);
  }
}

TEST_CASE("Draining: workers still booting are not waited for", "[unit][supervisor]") {
  Harness h;
  h.start();
  h.ready(100);
  h.signal(SIGTERM);
  CHECK(h.spawner.signals == std::vector{Signal{100, SIGTERM, false}, Signal{101, SIGTERM, false}});
  h.clock.advance(1s);
  CHECK(h.spawner.signals.back() == Signal{101, SIGKILL, true});
  CHECK(h.spawner.signals.size() == 3);  // the ready one keeps its graceful timeout
}

TEST_CASE("Draining: a quick stop interrupts, then kills", "[unit][supervisor]") {
  Harness h;
  Supervisor& s = h.start();
  h.ready(100);  // 101 is still booting

  h.signal(SIGINT);
  CHECK(s.state() == State::DrainQuick);
  CHECK(h.spawner.signals == std::vector{Signal{100, SIGINT, false}, Signal{101, SIGKILL, true}});
  h.spawner.exit(101, ExitStatus::signaled(SIGKILL));
  h.clock.advance(1s);
  CHECK(h.spawner.signals.back() == Signal{100, SIGKILL, true});
  h.spawner.exit(100, ExitStatus::signaled(SIGKILL));
  CHECK(h.stopped_with == kExitInterrupted);
}

TEST_CASE("Draining: a drain with no worker alive stops at once", "[unit][supervisor]") {
  Harness h;
  h.config.workers = 1;
  h.spawner.failing_spawns = 2;  // the first retry is immediate, the second waits
  Supervisor& s = h.start();
  CHECK(s.metrics().spawn_failures == 2);
  CHECK(h.clock.pending() == std::vector{100ms});
  h.signal(SIGTERM);
  CHECK(s.state() == State::Stopped);
  CHECK(h.stopped_with == kExitOk);
  h.clock.advance(1min);
  CHECK(h.spawner.spawned.size() == 2);  // the scheduled respawn was cancelled
}

TEST_CASE("Orphans are reaped without touching the workers", "[unit][supervisor]") {
  Harness h;
  Supervisor& s = h.running();
  h.spawner.exit(4242, ExitStatus::exited(3));
  CHECK(s.metrics().orphans_reaped == 1);
  CHECK(s.state() == State::Running);
  CHECK(s.status().alive == 2);
  CHECK(h.spawns() == 2);
}

TEST_CASE("A boot error after the first READY is respawned, not fatal", "[unit][supervisor]") {
  Harness h;
  Supervisor& s = h.running();
  h.spawner.exit(100, ExitStatus::signaled(SIGKILL));
  h.spawner.message(102, "BOOT_ERROR=database is down");
  h.spawner.exit(102, ExitStatus::exited(3));
  CHECK(s.state() == State::Running);
  CHECK(s.metrics().worker_exits.at("boot_failure") == 1);
  h.clock.advance(100ms);
  CHECK(h.spawns() == 4);
}

TEST_CASE("The service manager hears READY once all serve, then STOPPING", "[unit][supervisor]") {
  Harness h;
  h.config.graceful_timeout = 10s;
  h.start();
  h.ready(100);
  CHECK(h.notified == std::vector<std::string>{"STATUS=starting: 1 of 2 workers ready"});
  h.ready(101);
  CHECK(h.notified == std::vector<std::string>{"STATUS=starting: 1 of 2 workers ready", "READY=1",
                                               "STATUS=running: 2 of 2 workers ready"});
  h.notified.clear();
  h.signal(SIGTERM);
  CHECK(h.notified == std::vector<std::string>{"STOPPING=1\nEXTEND_TIMEOUT_USEC=13000000",
                                               "STATUS=draining: 2 of 2 workers ready (SIGTERM)",
                                               "STATUS=draining: 0 of 2 workers ready (SIGTERM)"});
}

TEST_CASE("status() reports what /ready needs", "[unit][supervisor]") {
  Harness h;
  h.config.workers = 3;
  h.config.min_ready = 2;
  Supervisor& s = h.start();
  h.ready(100);
  const SupervisorStatus status = s.status();
  CHECK(status.target == 3);
  CHECK(status.alive == 3);
  CHECK(status.ready == 1);
  CHECK(status.required == 2);
}

}  // namespace
}  // namespace corral

namespace corral {
namespace {

using namespace std::chrono_literals;
using testing::Harness;

const WorkerStatus* workerIn(const SupervisorStatus& status, Pid pid) {
  for (const WorkerStatus& worker : status.workers) {
    if (worker.pid == pid) return &worker;
  }
  return nullptr;
}

TEST_CASE("What the workers report, and what the supervisor counts, for /metrics and /status",
          "[unit][supervisor]") {
  Harness h;
  h.config.timeout = 8s;
  Supervisor& s = h.start();
  // Every exit reason is counted from the start.
  CHECK(s.metrics().worker_exits.size() == kExitReasons.size());
  CHECK(s.metrics().worker_exits.at("oom") == 0);
  CHECK(s.status().starting == 2);
  h.clock.advance(70ms);
  h.readyAll();
  CHECK(s.metrics().worker_startup.count == 2);
  CHECK(s.metrics().worker_startup.sum == Approx(0.14));
  CHECK(s.status().starting == 0);

  h.spawner.message(100, "REQUESTS=5 2");
  h.clock.advance(1500ms);
  h.spawner.message(101, "WATCHDOG=1");
  SupervisorStatus status = s.status();
  REQUIRE(status.workers.size() == 2);
  CHECK(status.workers[0].slot == 0);
  CHECK(status.workers[0].state == "ready");
  CHECK(status.workers[0].requests_served == 5);
  CHECK(status.workers[0].requests_in_flight == 2);
  CHECK(status.workers[0].heartbeat_age_seconds.value_or(-1) == Approx(1.5));  // since READY
  CHECK(status.workers[1].heartbeat_age_seconds.value_or(-1) == Approx(0.0));
  CHECK(status.workers[0].age_seconds == Approx(1.57));
  CHECK(status.uptime_seconds == Approx(1.57));

  // A crash: the slot's count of requests carries over to the next worker, which is a restart.
  h.spawner.exit(100, ExitStatus::signaled(SIGKILL));
  CHECK(s.metrics().retired_requests.at(0) == 5);
  status = s.status();
  const WorkerStatus* replacement = workerIn(status, 102);
  REQUIRE(replacement != nullptr);
  CHECK(replacement->state == "starting");
  CHECK(replacement->restarts == 1);
  CHECK(replacement->last_exit == "killed by SIGKILL");
  CHECK(replacement->last_exit_reason == "crash");
  CHECK_FALSE(replacement->heartbeat_age_seconds);

  // A reload is counted; the worker it replaces drains, and its drain is timed.
  h.ready(102);
  h.signal(SIGHUP);
  CHECK(s.metrics().reloads == 1);
  h.ready(103);  // slot 0's successor: the old worker is told to stop
  CHECK(s.status().draining == 1);
  h.clock.advance(300ms);
  h.spawner.exit(102, ExitStatus::exited(0));
  CHECK(s.metrics().worker_exits.at("reloaded") == 1);
  CHECK(s.metrics().drain_duration.count == 1);
  CHECK(s.metrics().drain_duration.sum == Approx(0.3));
}

}  // namespace
}  // namespace corral
