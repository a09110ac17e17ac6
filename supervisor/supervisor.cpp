// The supervisor's decisions: one table of what every event does in every state, the dispatch
// through it, and the one place the state changes. The actions themselves are in
// supervisor_workers.cpp (one worker's life), supervisor_drain.cpp (the ways out) and
// supervisor_roll.cpp (reload, scaling, recycling).

#include "supervisor/supervisor.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

#include "supervisor/control_message.hpp"
#include "supervisor/timing.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

using enum Action;

// clang-format off
// Rows follow EventKind, columns State. A deliberate nothing is Nop, so that a new event or
// state means deciding every new cell; a unit test walks the table and finds no Unset one.
constexpr std::array<std::array<Action, kStateCount>, kEventCount> kTable{{
//                        Starting Running  Reloading Restarting DrainDelay DrainGate DrainStop DrainQuick DrainKill Stopped
/* WorkerReady        */ {Ready,   Ready,   Ready,    Ready,     Ready,     Ready,    Nop,      Nop,       Nop,      Nop},
/* WorkerHeartbeat    */ {Beat,    Beat,    Beat,     Beat,      Beat,      Beat,     Nop,      Nop,       Nop,      Nop},
/* WorkerRecycle      */ {Replace, Replace, Replace,  Replace,   Nop,       Nop,      Nop,      Nop,       Nop,      Nop},
/* WorkerOverMemory   */ {Replace, Replace, Replace,  Replace,   Nop,       Nop,      Nop,      Nop,       Nop,      Nop},
/* WorkerDeadline     */ {Expire,  Expire,  Expire,   Expire,    Expire,    Expire,   Expire,   Expire,    Expire,   Nop},
/* WorkerExited       */ {Respawn, Respawn, Respawn,  Respawn,   Bury,      BuryLast, BuryLast, BuryLast,  BuryLast, Nop},
/* GracefulStop       */ {Drain,   Drain,   Drain,    Drain,     Escalate,  Escalate, Escalate, Kill,      Nop,      Nop},
/* QuickStop          */ {Hurry,   Hurry,   Hurry,    Hurry,     Hurry,     Hurry,    Hurry,    Kill,      Nop,      Nop},
/* Reload             */ {Roll,    Roll,    Roll,     Roll,      Refuse,    Refuse,   Refuse,   Refuse,    Refuse,   Refuse},
/* ScaleUp            */ {Grow,    Grow,    Grow,     Grow,      Refuse,    Refuse,   Refuse,   Refuse,    Refuse,   Refuse},
/* ScaleDown          */ {Shrink,  Shrink,  Shrink,   Shrink,    Refuse,    Refuse,   Refuse,   Refuse,    Refuse,   Refuse},
/* GenerationPrepared */ {Fill,    Nop,     Resume,   Swap,      Nop,       Nop,      Nop,      Nop,       Nop,      Nop},
/* RespawnDue         */ {Revive,  Revive,  Revive,   Revive,    Nop,       Nop,      Nop,      Nop,       Nop,      Nop},
/* DrainDelayOver     */ {Nop,     Nop,     Nop,      Nop,       Gate,      Nop,      Nop,      Nop,       Nop,      Nop},
/* QueuesEmpty        */ {Nop,     Nop,     Nop,      Nop,       Nop,       Stop,     Nop,      Nop,       Nop,      Nop},
/* DrainDeadline      */ {Nop,     Nop,     Nop,      Nop,       Nop,       Kill,     Kill,     Kill,      Nop,      Nop},
/* CodeChanged        */ {Restart, Restart, Restart,  Restart,   Nop,       Nop,      Nop,      Nop,       Nop,      Nop},
}};
// clang-format on
//
// Why the less obvious cells are what they are:
// - Every Drain* state past DrainGate has told every worker to stop, so a late READY or
//   heartbeat changes nothing, and a stopping worker is never recycled: it is on its way out.
// - DrainDelay's workers still serve (load balancers have not noticed /ready failing yet), but
//   one that exits is not replaced: corral is on its way out too. Bury, not BuryLast: the
//   delay is waited out even with no worker left, as the orchestrator expects.
// - A GenerationPrepared in Running is stale: a newer generation, or none, is wanted now.
// - DrainQuick has nothing left to wait for: asked again, it kills.
// - Restarting (--reload) is Reloading without the overlap: the same events move it on, but
//   its GenerationPrepared swaps every worker at once (Swap) where a roll goes slot by slot.
//   A SIGHUP during it rolls, and a change during a roll restarts: the newest request wins.
// - A change to the files during a stop is nothing to act on: Nop, not Refuse, since nobody
//   asked for it and an editor's save should not add to a stop's log.

}  // namespace

std::string_view actionName(Action action) {
  switch (action) {
    case Unset: return "Unset";
    case Nop: return "Nop";
    case Ready: return "Ready";
    case Beat: return "Beat";
    case Replace: return "Replace";
    case Expire: return "Expire";
    case Respawn: return "Respawn";
    case Bury: return "Bury";
    case BuryLast: return "BuryLast";
    case Drain: return "Drain";
    case Escalate: return "Escalate";
    case Hurry: return "Hurry";
    case Kill: return "Kill";
    case Roll: return "Roll";
    case Refuse: return "Refuse";
    case Grow: return "Grow";
    case Shrink: return "Shrink";
    case Fill: return "Fill";
    case Resume: return "Resume";
    case Revive: return "Revive";
    case Gate: return "Gate";
    case Stop: return "Stop";
    case Restart: return "Restart";
    case Swap: return "Swap";
  }
  return "?";
}

Action Supervisor::decide(State state, EventKind kind) {
  return kTable[static_cast<std::size_t>(kind)][static_cast<std::size_t>(state)];
}

Supervisor::Supervisor(const Config& config, Clock& clock, ProcessSpawner& spawner, Hooks hooks)
    : config_(config),
      clock_(clock),
      spawner_(spawner),
      hooks_(std::move(hooks)),
      target_(config.workers),
      slots_(static_cast<std::size_t>(config.workers)),
      drain_delay_(clock.createTimer([this] { handle(Event::timer(EventKind::DrainDelayOver)); })),
      queue_poll_(clock.createTimer([this] { pollQueues(); })),
      drain_deadline_(
          clock.createTimer([this] { handle(Event::timer(EventKind::DrainDeadline)); })),
      memory_poll_(clock.createTimer([this] { checkMemory(); })) {
  started_at_ = clock.now();
  spawner_.attach(*this);
}

Supervisor::~Supervisor() = default;

void Supervisor::start() {
  spdlog::info("starting {} ({}) for {} with {}", plural(config_.workers, "worker"),
               config_.workers_reason, config_.app, config_.python);
  prepareGeneration();
  if (config_.max_worker_memory) memory_poll_->enable(kMemoryCheckInterval);
}

void Supervisor::handle(const Event& event) {
  const Action action = decide(state_, event.kind);
  spdlog::trace("{} in {}: {}", eventName(event.kind), stateName(state_), actionName(action));
  perform(action, event);
}

void Supervisor::perform(Action action, const Event& event) {
  switch (action) {
    case Unset:  // the table's unit test keeps this from happening
    case Nop: break;
    case Ready: markReady(event.pid); break;
    case Beat: heartbeat(event.pid); break;
    case Replace: replace(event); break;
    case Expire: expire(event.pid); break;
    case Respawn: {
      const Worker worker = collect(event);
      respawnAfter(worker, event.status);
      break;
    }
    case Bury: collect(event); break;
    case BuryLast:
      collect(event);
      finishIfEmpty();
      break;
    case Drain: drain(event); break;
    case Escalate: quickStop(event.why + " during drain", exit_code_); break;
    case Hurry: quickStop(event.why, event.exit_code); break;
    case Kill:
      killAll(event.kind == EventKind::DrainDeadline ? "deadline reached"
                                                     : event.why + " during quick stop");
      break;
    case Roll: roll(event); break;
    case Refuse: refuse(event); break;
    case Grow: grow(); break;
    case Shrink: shrink(); break;
    case Fill: fill(event.generation); break;
    case Resume: resume(event.generation); break;
    case Revive: revive(event.slot); break;
    case Gate: gate(); break;
    case Stop: stopWorkers(); break;
    case Restart: restart(event); break;
    case Swap: swap(event.generation); break;
  }
}

// The one place state_ changes. The service manager hears READY=1 once every worker serves
// (gunicorn sends it before any has booted); after a roll it also ends the RELOADING=1 that
// began it. STOPPING=1 goes out once, as the first stop state is entered.
void Supervisor::transitionTo(State next, std::string_view why) {
  spdlog::info("state {} -> {} ({})", stateName(state_), stateName(next), why);
  const State previous = state_;
  state_ = next;
  if (next == State::Running) notify(ServiceNotice::ready());
  if (next == State::Reloading) notify(ServiceNotice::reloading());
  if (isStopping(next) && !isStopping(previous)) {
    // The stop may outlast the service manager's timeout; ask for what it needs.
    const bool quick = next == State::DrainQuick || next == State::DrainKill;
    const Duration needed =
        quick ? kQuickGrace : config_.drain_delay + config_.graceful_timeout + kKillGrace;
    notify(ServiceNotice::stopping(needed));
  }
  notifyStatus();
}

void Supervisor::notify(const ServiceNotice& notice) const {
  if (hooks_.notify) hooks_.notify(notice);
}

void Supervisor::notifyStatus() const {
  const SupervisorStatus s = status();
  std::string text =
      fmt::format("{}: {} of {} workers ready", publicStateName(s.state), s.ready, s.target);
  if (!s.draining_reason.empty()) text += " (" + s.draining_reason + ")";
  notify(ServiceNotice::statusLine(std::move(text)));
}

// After a worker became READY or left the pool on purpose: the start may be complete, or the
// roll may move on.
void Supervisor::afterPoolChange() {
  if (state_ == State::Starting && pool_.readyCount() >= target_) {
    transitionTo(State::Running, "all " + plural(target_, "worker") + " ready");
  } else if (state_ == State::Reloading) {
    continueRoll();
  } else if (state_ == State::Restarting) {
    finishRestart();
  } else {
    notifyStatus();
  }
}

void Supervisor::refuse(const Event& event) const {
  spdlog::info("{} ignored: corral is stopping", event.why);
}

void Supervisor::onChildMessage(Pid pid, std::string_view datagram) {
  Worker* worker = pool_.find(pid);
  if (worker == nullptr) return;
  const ControlMessage message = ControlMessage::parse(datagram);
  switch (message.kind) {
    case ControlMessage::Kind::Ready:
      worker->last_heartbeat = clock_.now();
      return handle(Event::worker(EventKind::WorkerReady, pid));
    case ControlMessage::Kind::Watchdog:
      worker->last_heartbeat = clock_.now();
      return handle(Event::worker(EventKind::WorkerHeartbeat, pid));
    case ControlMessage::Kind::Requests:
      // Facts for /metrics and /status: no decision depends on them.
      worker->requests_served = message.served;
      worker->requests_in_flight = message.in_flight;
      return;
    case ControlMessage::Kind::Recycle:
      return handle(Event::worker(EventKind::WorkerRecycle, pid, message.text));
    case ControlMessage::Kind::BootError:
    case ControlMessage::Kind::ConfigError:
      // Facts about the worker, kept for when it exits: no decision to make now.
      if (worker->error.empty()) worker->error = message.text;
      worker->config_error = message.kind == ControlMessage::Kind::ConfigError;
      return;
    case ControlMessage::Kind::LoadError:
      // --reload: the app's code failed; the worker serves a 503 with this text instead.
      if (worker->load_error.empty()) worker->load_error = message.text;
      return;
    case ControlMessage::Kind::Status:
      spdlog::debug("worker {} (pid {}): {}", worker->slot, pid, message.text);
      return;
    case ControlMessage::Kind::Unknown:
      spdlog::debug("worker {} (pid {}) sent an unknown message: {}", worker->slot, pid,
                    message.text);
      return;
  }
}

void Supervisor::onChildExit(Pid pid, const ExitStatus& status) {
  if (pool_.find(pid) == nullptr) {
    // Reparented to corral (a worker's double-forked child, say): reaped, never a worker.
    ++metrics_.orphans_reaped;
    spdlog::debug("reaped orphan pid {} ({})", pid, status.str());
    return;
  }
  handle(Event::workerExited(pid, status));
}

SupervisorStatus Supervisor::status() const {
  SupervisorStatus s;
  s.state = state_;
  s.target = target_;
  s.alive = pool_.size();
  s.ready = pool_.readyCount();
  s.required = config_.min_ready > 0 ? std::min(config_.min_ready, target_) : target_;
  s.generation = generation_;
  s.draining_reason = draining_reason_;
  s.reload_error = reload_error_;
  s.workers_reason = config_.workers_reason;
  if (hooks_.queued_connections) s.queued = hooks_.queued_connections();
  const TimePoint now = clock_.now();
  s.uptime_seconds = std::chrono::duration<double>(now - started_at_).count();
  for (const Worker& worker : pool_) {
    if (worker.state == WorkerState::Starting) ++s.starting;
    if (worker.state == WorkerState::Stopping) ++s.draining;
    s.workers.push_back(workerStatus(worker, now));
  }
  std::stable_sort(s.workers.begin(), s.workers.end(),
                   [](const WorkerStatus& a, const WorkerStatus& b) { return a.slot < b.slot; });
  return s;
}

WorkerStatus Supervisor::workerStatus(const Worker& worker, TimePoint now) const {
  WorkerStatus w;
  w.slot = worker.slot;
  w.pid = worker.pid;
  w.generation = worker.generation;
  switch (worker.state) {
    case WorkerState::Starting: w.state = "starting"; break;
    case WorkerState::Ready: w.state = "ready"; break;
    case WorkerState::Stopping: w.state = "draining"; break;
  }
  w.age_seconds = std::chrono::duration<double>(now - worker.spawned_at).count();
  if (static_cast<std::size_t>(worker.slot) < slots_.size()) {
    const Slot& slot = slots_[static_cast<std::size_t>(worker.slot)];
    w.restarts = std::max(0, slot.spawns - 1);
    w.last_exit = slot.last_exit;
    w.last_exit_reason = slot.last_reason;
  }
  w.resident_bytes = spawner_.residentBytes(worker.pid);
  w.requests_served = worker.requests_served;
  w.requests_in_flight = worker.requests_in_flight;
  if (worker.last_heartbeat) {
    w.heartbeat_age_seconds = std::chrono::duration<double>(now - *worker.last_heartbeat).count();
  }
  return w;
}

}  // namespace corral
