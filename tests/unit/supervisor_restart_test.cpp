// --reload's restart under simulated time: every worker replaced at once, the worker template
// kept unless what it imported changed, a load error reported once, and a change that comes
// during a restart, a roll or a stop.

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>

#include "config/exit_codes.hpp"
#include "fakes/supervisor_harness.hpp"

namespace corral {
namespace {

using namespace std::chrono_literals;
using testing::Harness;

void change(Harness& h, bool fresh_template = false) {
  h.supervisor->handle(Event::codeChanged("app.py changed", fresh_template));
}

TEST_CASE("Restart: every worker is told to stop as its replacement starts", "[unit][restart]") {
  Harness h;
  Supervisor& s = h.running();
  change(h);
  CHECK(s.state() == State::Restarting);
  REQUIRE(h.spawns() == 4);  // both slots at once, not --max-surge at a time
  CHECK(h.signalled({100, SIGTERM, false}));
  CHECK(h.signalled({101, SIGTERM, false}));
  CHECK(h.spawner.spawned[2].generation == 1);
  CHECK(h.spawner.spawned[3].generation == 1);
  CHECK(s.status().ready == 0);  // nothing old serves on: a request waits for the new code
  // The old ones finish what they serve, within the graceful timeout.
  const auto pending = h.clock.pending();
  CHECK(std::count(pending.begin(), pending.end(), h.config.graceful_timeout) == 2);
  h.ready(102);
  CHECK(s.state() == State::Restarting);
  h.ready(103);
  CHECK(s.state() == State::Running);
  h.spawner.exit(100, ExitStatus::exited(0));
  h.spawner.exit(101, ExitStatus::exited(0));
  CHECK(h.spawns() == 4);  // their exits are no crashes: nothing is respawned
  CHECK(s.metrics().worker_exits.at("reloaded") == 2);
}

TEST_CASE("Restart: the worker template is kept unless it imported what changed",
          "[unit][restart]") {
  Harness h;
  h.running();
  change(h);
  CHECK(h.spawner.prepared == std::vector{0, 0});
  CHECK(h.spawner.spawned.back().template_generation == 0);
  change(h, true);
  CHECK(h.spawner.prepared == std::vector{0, 0, 2});
  CHECK(h.spawner.spawned.back().generation == 2);
  CHECK(h.spawner.spawned.back().template_generation == 2);
  h.signal(SIGHUP);  // a roll always gets a template of its own
  CHECK(h.spawner.prepared.back() == 3);
}

TEST_CASE("Restart: with a new template, the old workers serve until it is prepared",
          "[unit][restart]") {
  Harness h;
  Supervisor& s = h.running();
  h.spawner.defer_prepare = true;
  change(h, true);
  CHECK(s.state() == State::Restarting);
  CHECK(h.spawns() == 2);
  CHECK(h.spawner.signals.empty());
  CHECK(s.status().ready == 2);
  h.spawner.finishPrepare();
  CHECK(h.spawns() == 4);
  CHECK(h.signalled({100, SIGTERM, false}));
}

TEST_CASE("Restart: a second change while preparing restarts on the newest generation only",
          "[unit][restart]") {
  Harness h;
  Supervisor& s = h.running();
  h.spawner.defer_prepare = true;
  change(h, true);
  change(h, true);
  h.spawner.finishPrepare();  // generation 1's preparation is stale by now
  REQUIRE(h.spawns() == 4);
  CHECK(h.spawner.spawned[2].generation == 2);
  h.ready(102);
  h.ready(103);
  CHECK(s.state() == State::Running);
}

TEST_CASE("Restart: a change while new workers boot replaces them too", "[unit][restart]") {
  Harness h;
  Supervisor& s = h.running();
  change(h);
  change(h);
  // The booting ones of generation 1 hold no connection: a short grace, as superseded.
  CHECK(h.signalled({102, SIGTERM, false}));
  CHECK(h.signalled({103, SIGTERM, false}));
  REQUIRE(h.spawns() == 6);
  CHECK(h.spawner.spawned[5].generation == 2);
  h.spawner.exit(102, ExitStatus::signaled(SIGTERM));
  h.spawner.exit(103, ExitStatus::signaled(SIGTERM));
  CHECK(h.spawns() == 6);
  h.ready(104);
  h.ready(105);
  CHECK(s.state() == State::Running);
  CHECK(s.metrics().worker_exits.at("superseded") == 2);
}

TEST_CASE("Restart: a change in Starting replaces the first workers", "[unit][restart]") {
  Harness h;
  Supervisor& s = h.start();
  change(h);
  CHECK(s.state() == State::Restarting);
  REQUIRE(h.spawns() == 4);
  h.ready(102);
  h.ready(103);
  CHECK(s.state() == State::Running);
}

TEST_CASE("Restart: a change during a roll restarts, superseding its replacements",
          "[unit][restart]") {
  Harness h;
  Supervisor& s = h.running();
  h.signal(SIGHUP);
  REQUIRE(h.spawns() == 3);  // the roll's successor for slot 0
  change(h);
  CHECK(s.state() == State::Restarting);
  CHECK(h.signalled({102, SIGTERM, false}));
  h.spawner.exit(102, ExitStatus::signaled(SIGTERM));
  CHECK(s.metrics().reload_failures == 0);  // a superseded successor is nobody's failure
  h.readyAll();
  CHECK(s.state() == State::Running);
  CHECK(s.status().generation == 2);
}

TEST_CASE("Restart: a crash of a new worker is respawned in its slot", "[unit][restart]") {
  Harness h;
  Supervisor& s = h.running();
  change(h);
  h.spawner.exit(102, ExitStatus::signaled(SIGSEGV));
  REQUIRE(h.spawns() == 5);
  CHECK(h.spawner.spawned[4].slot == 0);
  CHECK(h.spawner.spawned[4].generation == 1);
  h.ready(103);
  h.ready(104);
  CHECK(s.state() == State::Running);
}

TEST_CASE("Restart: a load error is logged once, shown, and fixed by the next change",
          "[unit][restart]") {
  Harness h;
  Supervisor& s = h.running();
  change(h);
  for (const Pid pid : {102, 103}) {
    h.spawner.message(pid, "LOAD_ERROR=Traceback (most recent call last):\nNameError: oops\n");
    h.ready(pid);
  }
  CHECK(s.state() == State::Running);
  CHECK(s.metrics().reload_failures == 1);  // one per change, not per worker
  CHECK(s.status().reload_error == "Traceback (most recent call last):\nNameError: oops");
  CHECK(s.status().ready == 2);  // they answer (with a 503)
  change(h);
  CHECK(s.status().reload_error.empty());
  h.ready(104);
  h.ready(105);
  CHECK(s.state() == State::Running);
  CHECK(s.status().reload_error.empty());
  CHECK(s.metrics().reload_failures == 1);
}

TEST_CASE("Restart: a first boot that fails to load serves its error, corral goes on",
          "[unit][restart]") {
  Harness h;
  Supervisor& s = h.start();
  h.spawner.message(100, "LOAD_ERROR=ImportError: no module named x");
  h.spawner.message(101, "LOAD_ERROR=ImportError: no module named x");
  h.readyAll();
  CHECK(s.state() == State::Running);
  CHECK_FALSE(h.stopped_with);
  CHECK(s.status().reload_error == "ImportError: no module named x");
}

TEST_CASE("Restart: a change during a stop changes nothing", "[unit][restart]") {
  Harness h;
  Supervisor& s = h.running();
  h.signal(SIGTERM);
  const auto spawns = h.spawns();
  change(h);
  CHECK(isStopping(s.state()));
  CHECK(h.spawns() == spawns);
  CHECK(s.status().generation == 0);
}

TEST_CASE("Restart: SIGTERM while restarting drains old and new", "[unit][restart]") {
  Harness h;
  Supervisor& s = h.running();
  change(h);
  h.signal(SIGTERM);
  CHECK(isStopping(s.state()));
  for (const Pid pid : std::vector(h.spawner.pids)) h.spawner.exit(pid, ExitStatus::exited(0));
  CHECK(h.stopped_with == kExitOk);
}

}  // namespace
}  // namespace corral
