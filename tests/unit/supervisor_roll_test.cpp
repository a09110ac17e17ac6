// Replacing workers without a gap, under simulated time: reload, scaling, recycling, and the
// drain's delay and listen-queue wait.

#include <catch2/catch.hpp>
#include <csignal>

#include "config/exit_codes.hpp"
#include "fakes/supervisor_harness.hpp"

namespace corral {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using Signal = testing::FakeSpawner::Signal;

TEST_CASE("Starting: the first workers start once the spawner is prepared", "[unit][roll]") {
  Harness h;
  h.spawner.defer_prepare = true;
  Supervisor& s = h.start();
  CHECK(h.spawner.prepared == std::vector{0});
  CHECK(h.spawns() == 0);  // the worker template boots first
  h.spawner.finishPrepare();
  CHECK(h.spawns() == 2);
  h.readyAll();
  CHECK(s.state() == State::Running);
}

TEST_CASE("Starting: SIGTERM while the spawner prepares stops without a worker", "[unit][roll]") {
  Harness h;
  h.spawner.defer_prepare = true;
  h.start();
  h.signal(SIGTERM);
  CHECK(h.stopped_with == kExitOk);
  h.spawner.finishPrepare();
  CHECK(h.spawns() == 0);
}

TEST_CASE("Reloading: the roll waits for the new generation to be prepared", "[unit][roll]") {
  Harness h;
  h.running();
  h.spawner.defer_prepare = true;
  h.signal(SIGHUP);
  CHECK(h.spawner.prepared == std::vector{0, 1});
  CHECK(h.spawns() == 2);
  h.signal(SIGTTOU);  // an event that would move the roll on: it still waits
  CHECK(h.spawns() == 2);
  h.spawner.finishPrepare();
  REQUIRE(h.spawns() == 3);
  CHECK(h.spawner.spawned.back().generation == 1);
}

TEST_CASE("Reloading: a second SIGHUP while preparing rolls to the newest generation only",
          "[unit][roll]") {
  Harness h;
  h.running();
  h.spawner.defer_prepare = true;
  h.signal(SIGHUP);
  h.signal(SIGHUP);
  h.spawner.finishPrepare();  // generation 1's preparation is stale by now
  REQUIRE(h.spawns() == 3);
  CHECK(h.spawner.spawned.back().generation == 2);
}

TEST_CASE("Starting: a SIGHUP while the first workers are prepared still starts them",
          "[unit][roll]") {
  Harness h;
  h.spawner.defer_prepare = true;
  Supervisor& s = h.start();
  h.signal(SIGHUP);
  h.spawner.finishPrepare();
  REQUIRE(h.spawns() == 2);
  CHECK(h.spawner.spawned[0].generation == 1);
  CHECK(h.spawner.spawned[1].generation == 1);
  h.readyAll();
  CHECK(s.state() == State::Running);
}

TEST_CASE("Reloading: one slot at a time, the new worker READY first", "[unit][roll]") {
  Harness h;
  Supervisor& s = h.running();
  h.signal(SIGHUP);
  CHECK(s.state() == State::Reloading);
  CHECK(h.notified[h.notified.size() - 2].starts_with("RELOADING=1\nMONOTONIC_USEC="));
  REQUIRE(h.spawns() == 3);  // --max-surge 1
  CHECK(h.spawner.spawned.back().slot == 0);
  CHECK(h.spawner.signals.empty());  // nobody is stopped before the new one serves

  h.ready(102);
  CHECK(h.spawner.signals == std::vector{Signal{100, SIGTERM, false}});
  REQUIRE(h.spawns() == 4);
  CHECK(h.spawner.spawned.back().slot == 1);
  CHECK(s.status().ready == 2);  // 101 and 102 serve; 100 drains

  h.ready(103);
  CHECK(h.spawner.signals.back() == Signal{101, SIGTERM, false});
  CHECK(s.state() == State::Running);
  CHECK(h.notified[h.notified.size() - 2] == "READY=1");
  CHECK(std::count(h.notified.begin(), h.notified.end(), "READY=1") == 2);  // boot, then roll
  h.spawner.exit(100, ExitStatus::exited(0));
  h.spawner.exit(101, ExitStatus::signaled(SIGTERM));
  CHECK(s.metrics().worker_exits.at("reloaded") == 2);
  CHECK(h.spawns() == 4);  // replaced workers are not respawned
  CHECK(s.status().generation == 1);
}

TEST_CASE("Reloading: --max-surge starts several replacements at once", "[unit][roll]") {
  Harness h;
  h.config.workers = 3;
  h.config.max_surge = 2;
  Supervisor& s = h.running();
  h.signal(SIGHUP);
  CHECK(h.spawns() == 5);
  h.ready(103);
  CHECK(h.spawns() == 6);
  h.ready(104);
  h.ready(105);
  CHECK(s.state() == State::Running);
}

TEST_CASE("Reloading: new code that cannot boot leaves the old workers serving", "[unit][roll]") {
  Harness h;
  Supervisor& s = h.running();
  h.signal(SIGHUP);
  h.spawner.message(102, "BOOT_ERROR=SyntaxError: invalid syntax");
  h.spawner.exit(102, ExitStatus::exited(3));
  CHECK(s.state() == State::Running);
  CHECK(s.status().reload_error == "SyntaxError: invalid syntax");
  CHECK(s.status().ready == 2);
  CHECK(h.spawner.signals.empty());
  CHECK(s.metrics().reload_failures == 1);
  CHECK(h.spawns() == 3);  // no more of the broken code

  SECTION("the next reload clears the error once it succeeds") {
    h.signal(SIGHUP);
    CHECK(s.status().reload_error.empty());
    h.ready(103);
    h.ready(104);
    CHECK(s.state() == State::Running);
  }
}

TEST_CASE("Reloading: a replacement that fails after its old worker died leaves no slot empty",
          "[unit][roll]") {
  Harness h;
  Supervisor& s = h.running();
  h.signal(SIGHUP);
  REQUIRE(h.spawns() == 3);                            // 102 boots to replace 100
  h.spawner.exit(100, ExitStatus::signaled(SIGKILL));  // slot 0 is 102's now
  CHECK(h.spawns() == 3);
  h.spawner.message(102, "BOOT_ERROR=ImportError: no module named 'x'");
  h.spawner.exit(102, ExitStatus::exited(3));
  CHECK(s.status().reload_error == "ImportError: no module named 'x'");
  REQUIRE(h.spawns() == 4);  // slot 0 refilled rather than left empty
  CHECK(h.spawner.spawned.back().slot == 0);
}

TEST_CASE("Reloading: a second SIGHUP restarts the roll with the newest code", "[unit][roll]") {
  Harness h;
  Supervisor& s = h.running();
  h.signal(SIGHUP);
  h.signal(SIGHUP);  // 102 was booting the older code
  CHECK(h.signalled(Signal{102, SIGTERM, false}));
  REQUIRE(h.spawns() == 4);
  CHECK(s.status().generation == 2);
  h.spawner.exit(102, ExitStatus::signaled(SIGTERM));
  h.ready(103);
  CHECK(h.signalled(Signal{100, SIGTERM, false}));
  h.ready(104);
  CHECK(s.state() == State::Running);
}

TEST_CASE("Scaling: SIGTTIN adds a worker, SIGTTOU drains one, never below one", "[unit][roll]") {
  Harness h;
  h.config.graceful_timeout = 10s;
  Supervisor& s = h.running();
  h.signal(SIGTTIN);
  CHECK(s.status().target == 3);
  REQUIRE(h.spawns() == 3);
  CHECK(h.spawner.spawned.back().slot == 2);
  h.ready(102);

  h.signal(SIGTTOU);
  CHECK(s.status().target == 2);
  CHECK(h.spawner.signals == std::vector{Signal{102, SIGTERM, false}});
  h.clock.advance(10s);  // its own graceful timeout
  CHECK(h.spawner.signals.back() == Signal{102, SIGKILL, true});
  h.spawner.exit(102, ExitStatus::signaled(SIGKILL));
  CHECK(h.spawns() == 3);

  h.signal(SIGTTOU);
  CHECK(h.signalled(Signal{101, SIGTERM, false}));
  h.spawner.exit(101, ExitStatus::exited(0));
  h.signal(SIGTTOU);  // at one worker: ignored
  CHECK(s.status().target == 1);
  CHECK(s.status().alive == 1);
  CHECK(s.metrics().worker_exits.at("scaled_down") == 2);
}

TEST_CASE("Recycling: the replacement serves before the worker at its limit stops",
          "[unit][roll]") {
  Harness h;
  h.config.max_requests = 1000;
  h.config.max_requests_jitter = 50;
  h.next_random = 17;
  Supervisor& s = h.running();
  CHECK(h.spawner.spawned[0].max_requests == 1017);

  h.spawner.message(100, "RECYCLE=served 1017 requests (limit 1017)");
  REQUIRE(h.spawns() == 3);
  CHECK(h.spawner.spawned.back().slot == 0);
  h.spawner.message(100, "RECYCLE=again");  // already being replaced
  CHECK(h.spawns() == 3);
  CHECK(h.spawner.signals.empty());
  h.ready(102);
  CHECK(h.spawner.signals == std::vector{Signal{100, SIGTERM, false}});
  h.spawner.exit(100, ExitStatus::exited(0));
  CHECK(s.metrics().worker_exits.at("recycled") == 1);
  CHECK(s.status().ready == 2);
  CHECK(h.spawns() == 3);
}

TEST_CASE("Recycling: a worker above --max-worker-memory twice in a row", "[unit][roll]") {
  Harness h;
  h.config.max_worker_memory = 100u << 20;
  h.running();
  h.spawner.resident[100] = 150u << 20;
  h.spawner.resident[101] = 50u << 20;
  h.clock.advance(1s);
  CHECK(h.spawns() == 2);  // one reading is not enough
  h.spawner.resident[100] = 90u << 20;
  h.clock.advance(1s);
  h.spawner.resident[100] = 150u << 20;
  h.clock.advance(1s);
  CHECK(h.spawns() == 2);  // the streak was broken
  h.clock.advance(1s);
  REQUIRE(h.spawns() == 3);
  CHECK(h.spawner.spawned.back().slot == 0);
}

TEST_CASE("Draining: --drain-delay keeps serving, then queued connections are served first",
          "[unit][roll]") {
  Harness h;
  h.config.drain_delay = 5s;
  Supervisor& s = h.running();
  h.signal(SIGTERM);
  CHECK(s.state() == State::DrainDelay);
  CHECK(s.status().ready == 2);  // still serving, but /ready fails: the state says Draining
  CHECK_FALSE(h.gated);
  CHECK(h.spawner.signals.empty());

  SECTION("then the queue is served before the workers are told to stop") {
    h.queued = 3;
    h.clock.advance(5s);
    CHECK(h.gated);
    CHECK(h.spawner.signals.empty());  // the queue is not empty yet
    h.clock.advance(50ms);
    CHECK(h.spawner.signals.empty());
    h.queued = 0;
    h.clock.advance(10ms);
    CHECK(h.spawner.signals ==
          std::vector{Signal{100, SIGTERM, false}, Signal{101, SIGTERM, false}});
  }
  SECTION("workers that crash during the delay are not respawned; the stop waits it out") {
    h.spawner.exit(100, ExitStatus::signaled(SIGKILL));
    h.spawner.exit(101, ExitStatus::signaled(SIGKILL));
    CHECK(h.spawns() == 2);
    CHECK(s.state() == State::DrainDelay);
    h.clock.advance(5s);
    CHECK(s.state() == State::Stopped);
    CHECK(h.stopped_with == 0);
  }
}

TEST_CASE("Draining: a quick stop cuts the delay short", "[unit][roll]") {
  Harness h;
  h.config.drain_delay = 5s;
  h.running();
  h.signal(SIGTERM);
  h.signal(SIGTERM);
  CHECK(h.spawner.signals == std::vector{Signal{100, SIGINT, false}, Signal{101, SIGINT, false}});
  h.spawner.exit(100, ExitStatus::exited(0));
  h.spawner.exit(101, ExitStatus::exited(0));
  CHECK(h.stopped_with == 0);
}

}  // namespace
}  // namespace corral
