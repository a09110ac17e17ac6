// The state x event table: every pair is decided, and a Nop decides to do nothing at all.

#include <catch2/catch.hpp>
#include <csignal>
#include <functional>

#include "fakes/supervisor_harness.hpp"

namespace corral {
namespace {

using namespace std::chrono_literals;
using testing::Harness;

constexpr std::array kAllStates{
    State::Starting,  State::Running,   State::Reloading,  State::Restarting, State::DrainDelay,
    State::DrainGate, State::DrainStop, State::DrainQuick, State::DrainKill,  State::Stopped};

TEST_CASE("The table's test knows every state", "[unit][table]") {
  CHECK(kAllStates.size() == kStateCount);
}

TEST_CASE("Every state x event pair has a decision", "[unit][table]") {
  for (std::size_t e = 0; e < kEventCount; ++e) {
    const auto kind = static_cast<EventKind>(e);
    for (const State state : kAllStates) {
      INFO(eventName(kind) << " in " << stateName(state));
      CHECK(Supervisor::decide(state, kind) != Action::Unset);
    }
  }
}

// Brings a fresh harness into `state` the way corral gets there.
void reach(Harness& h, State state) {
  h.config.drain_delay = state == State::DrainDelay ? 5s : 0s;
  h.queued = state == State::DrainGate ? 3 : 0;
  if (state == State::Starting) {
    h.start();
  } else {
    h.running();
  }
  switch (state) {
    case State::Starting:
    case State::Running: break;
    case State::Reloading: h.signal(SIGHUP); break;
    case State::Restarting:
      h.supervisor->handle(Event::codeChanged("app.py changed", false));
      break;
    case State::DrainDelay:
    case State::DrainGate:
    case State::DrainStop: h.signal(SIGTERM); break;
    case State::DrainQuick: h.signal(SIGINT); break;
    case State::DrainKill:
      h.signal(SIGINT);
      h.signal(SIGINT);
      break;
    case State::Stopped:
      h.signal(SIGTERM);
      for (const Pid pid : std::vector(h.spawner.pids)) h.spawner.exit(pid, ExitStatus::exited(0));
      break;
  }
  REQUIRE(h.supervisor->state() == state);
}

// An event of `kind` as the world would deliver it to the harness's supervisor.
Event sample(const Harness& h, EventKind kind) {
  const Pid pid = h.spawner.pids.front();
  switch (kind) {
    case EventKind::WorkerExited: return Event::workerExited(pid, ExitStatus::exited(0));
    case EventKind::GracefulStop: return *SignalRouter::eventFor(SIGTERM);
    case EventKind::QuickStop: return *SignalRouter::eventFor(SIGINT);
    case EventKind::Reload: return *SignalRouter::eventFor(SIGHUP);
    case EventKind::ScaleUp: return *SignalRouter::eventFor(SIGTTIN);
    case EventKind::ScaleDown: return *SignalRouter::eventFor(SIGTTOU);
    case EventKind::GenerationPrepared:
      return Event::generationPrepared(h.supervisor->status().generation);
    case EventKind::RespawnDue: return Event::respawnDue(0);
    case EventKind::DrainDelayOver:
    case EventKind::QueuesEmpty:
    case EventKind::DrainDeadline: return Event::timer(kind);
    case EventKind::CodeChanged: return Event::codeChanged("app.py changed", false);
    default: return Event::worker(kind, pid, "a test");
  }
}

TEST_CASE("A Nop or Refuse cell changes nothing", "[unit][table]") {
  for (std::size_t e = 0; e < kEventCount; ++e) {
    const auto kind = static_cast<EventKind>(e);
    for (const State state : kAllStates) {
      const Action action = Supervisor::decide(state, kind);
      if (action != Action::Nop && action != Action::Refuse) continue;
      INFO(eventName(kind) << " in " << stateName(state) << ": " << actionName(action));
      Harness h;
      reach(h, state);
      const auto spawns = h.spawner.spawned.size();
      const auto signals = h.spawner.signals.size();
      const auto pending = h.clock.pending();
      const auto status = h.supervisor->status();
      h.supervisor->handle(sample(h, kind));
      CHECK(h.supervisor->state() == state);
      CHECK(h.spawner.spawned.size() == spawns);
      CHECK(h.spawner.signals.size() == signals);
      CHECK(h.clock.pending() == pending);
      CHECK(h.supervisor->status().target == status.target);
      CHECK(h.supervisor->status().generation == status.generation);
    }
  }
}

TEST_CASE("After any cell, losing every worker ends in new workers or a stop", "[unit][table]") {
  // Each pair once, from a state reached for real (under ASan this also shows that no action
  // touches a worker or timer that is gone); then every worker dies and time passes.
  for (std::size_t e = 0; e < kEventCount; ++e) {
    const auto kind = static_cast<EventKind>(e);
    for (const State state : kAllStates) {
      INFO(eventName(kind) << " in " << stateName(state));
      Harness h;
      reach(h, state);
      h.supervisor->handle(sample(h, kind));
      const bool stopping = isStopping(h.supervisor->state());
      // A copy: the exits below make the supervisor spawn, which adds pids.
      for (const Pid pid : std::vector(h.spawner.pids)) {
        h.spawner.exit(pid, ExitStatus::signaled(SIGKILL));
      }
      h.clock.advance(1min);
      const SupervisorStatus after = h.supervisor->status();
      if (stopping) {
        CHECK(after.state == State::Stopped);
        CHECK(h.stopped_with.has_value());
      } else {
        CHECK_FALSE(isStopping(after.state));
        CHECK(after.alive == after.target);
      }
    }
  }
}

}  // namespace
}  // namespace corral
