// One worker's life under the supervisor: spawn, READY, heartbeats, deadlines, exit, respawn.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstring>

#include "config/exit_codes.hpp"
#include "supervisor/supervisor.hpp"
#include "supervisor/timing.hpp"
#include "util/log_fields.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

long long millisSince(TimePoint start, TimePoint now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count();
}

}  // namespace

// The spawner first gets ready for a generation (its worker template boots, unless a --reload
// change keeps the one there is), so that the generation's workers start in milliseconds;
// GenerationPrepared says when.
void Supervisor::prepareGeneration() {
  spawner_.prepare(template_generation_, [this, generation = generation_] {
    handle(Event::generationPrepared(generation));
  });
}

void Supervisor::fill(int generation) {
  if (generation != generation_) return;  // stale: a SIGHUP came meanwhile
  prepared_generation_ = generation;
  fillSlots();
}

void Supervisor::fillSlots() {
  for (int slot = 0; slot < target_; ++slot) {
    if (slotNeedsWorker(slot)) spawnWorker(slot);
  }
}

Worker* Supervisor::spawnWorker(int slot, std::optional<Succession> succession) {
  int max_requests = config_.max_requests;
  if (max_requests > 0 && config_.max_requests_jitter > 0 && hooks_.random) {
    // Drawn per worker, so that workers started together do not all recycle together.
    max_requests += hooks_.random(config_.max_requests_jitter);
  }
  const SpawnResult result =
      spawner_.spawn({slot, generation_, max_requests, template_generation_});
  if (!result.ok()) {
    ++metrics_.spawn_failures;
    spdlog::error("worker {} could not be started: {}", slot, std::strerror(result.error));
    if (!succession) scheduleRespawn(slot, std::nullopt);
    return nullptr;
  }
  const Pid pid = result.pid;
  Worker& worker = pool_.add(pid, slot, generation_, clock_.now());
  worker.succession = succession;
  worker.deadline =
      clock_.createTimer([this, pid] { handle(Event::worker(EventKind::WorkerDeadline, pid)); });
  worker.deadline->enable(config_.startup_timeout);
  ++metrics_.worker_spawns;
  if (result.forked) ++metrics_.worker_forks;
  ++slots_[static_cast<std::size_t>(slot)].spawns;
  {
    const LogFields fields{{"worker", slot}, {"worker_pid", pid}};
    spdlog::info("worker {} spawned (pid {}){}{}", slot, pid,
                 succession ? fmt::format(" to take over from pid {}", succession->replaces) : "",
                 result.forked ? ", forked from the template" : "");
  }
  return &worker;
}

void Supervisor::markReady(Pid pid) {
  Worker* worker = pool_.find(pid);
  if (worker == nullptr || worker->state != WorkerState::Starting) return;  // a duplicate
  const TimePoint now = clock_.now();
  worker->state = WorkerState::Ready;
  worker->ready_at = now;
  ever_ready_ = true;
  metrics_.worker_startup.observe(std::chrono::duration<double>(now - worker->spawned_at).count());
  {
    const long long took = millisSince(worker->spawned_at, now);
    const LogFields fields{{"worker", worker->slot}, {"worker_pid", pid}, {"duration_ms", took}};
    spdlog::info("worker {} ready (pid {}) in {}ms{}", worker->slot, pid, took,
                 worker->load_error.empty() ? "" : ", answering 503 with the app's load error");
  }
  if (!worker->load_error.empty()) reportLoadError(*worker);
  if (config_.timeout.count() > 0) {
    worker->deadline->enable(config_.timeout);
  } else {
    worker->deadline->disable();
  }
  // The worker it replaces stops first, so that the count below sees one worker per slot.
  if (worker->succession) onSuccessorReady(*worker);
  afterPoolChange();
}

void Supervisor::heartbeat(Pid pid) {
  Worker* worker = pool_.find(pid);
  if (worker != nullptr && worker->state == WorkerState::Ready && config_.timeout.count() > 0) {
    worker->deadline->enable(config_.timeout);
  }
}

void Supervisor::expire(Pid pid) {
  Worker* worker = pool_.find(pid);
  if (worker == nullptr) return;
  switch (worker->state) {
    case WorkerState::Starting:
      abortWorker(*worker, StopCause::StartupTimeout,
                  "not ready after " + formatDuration(config_.startup_timeout));
      break;
    case WorkerState::Ready:
      abortWorker(*worker, StopCause::Hung, "no heartbeat for " + formatDuration(config_.timeout));
      break;
    case WorkerState::Stopping:
      spdlog::warn("worker {} (pid {}) did not exit in time, sending SIGKILL", worker->slot, pid);
      spawner_.signal(pid, SIGKILL, true);
      break;
  }
}

// SIGABRT first: the shim enables faulthandler, so the Python stack of whatever blocks the
// worker lands in the log before it dies.
void Supervisor::abortWorker(Worker& worker, StopCause cause, std::string_view what) {
  {
    const LogFields fields{{"worker", worker.slot}, {"worker_pid", worker.pid}};
    spdlog::warn("worker {} {} (pid {}): {}, sending SIGABRT", worker.slot,
                 cause == StopCause::Hung ? "hung" : "startup timed out", worker.pid, what);
  }
  stopWorker(worker, cause, SIGABRT, false);
  worker.deadline->enable(kKillGrace);
}

void Supervisor::stopWorker(Worker& worker, StopCause cause, int signo, bool whole_group) {
  worker.state = WorkerState::Stopping;
  worker.cause = cause;
  if (!worker.stop_sent_at) worker.stop_sent_at = clock_.now();
  worker.deadline->disable();
  spawner_.signal(worker.pid, signo, whole_group);
}

// One worker leaves the pool on its own: it drains like a SIGTERM'd pool does, with its own
// graceful deadline (a booting one has nothing to drain and gets a short one).
void Supervisor::retireWorker(Worker& worker, StopCause cause) {
  const bool booting = worker.state == WorkerState::Starting;
  stopWorker(worker, cause, SIGTERM, false);
  worker.deadline->enable(booting ? kQuickGrace : config_.graceful_timeout);
}

namespace {

std::string_view exitReason(const Worker& worker, const ExitStatus& status) {
  if (status.oom_killed) return "oom";  // whatever corral had asked, the kernel came first
  switch (worker.cause) {
    case StopCause::Hung: return "hung";
    case StopCause::StartupTimeout: return "startup_timeout";
    case StopCause::Drain:
      return status.signaledBy(SIGKILL) ? "killed_at_drain_deadline" : "drained";
    case StopCause::Reload: return "reloaded";
    case StopCause::Recycle: return "recycled";
    case StopCause::ScaleDown: return "scaled_down";
    case StopCause::Superseded: return "superseded";
    case StopCause::Quick:
    case StopCause::BootFailure: return "stopped";
    case StopCause::None: break;
  }
  if (worker.config_error) return "cannot_run";
  if (!worker.error.empty()) return "boot_failure";
  return status.exitedWith(0) ? "exited" : "crash";
}

// Stops in which the worker finished its requests on SIGTERM: their length is a drain's.
bool isGracefulStop(StopCause cause) {
  switch (cause) {
    case StopCause::Drain:
    case StopCause::Reload:
    case StopCause::Recycle:
    case StopCause::ScaleDown: return true;
    default: return false;
  }
}

}  // namespace

// Takes a reaped worker out of the pool, counted and logged.
Worker Supervisor::collect(const Event& exit) {
  Worker worker = pool_.remove(exit.pid);
  const std::string_view reason = exitReason(worker, exit.status);
  ++metrics_.worker_exits[std::string(reason)];
  metrics_.retired_requests[worker.slot] += worker.requests_served;
  if (static_cast<std::size_t>(worker.slot) < slots_.size()) {
    Slot& slot = slots_[static_cast<std::size_t>(worker.slot)];
    slot.last_exit = exit.status.str();
    slot.last_reason = reason;
  }
  LogFields fields{
      {"worker", worker.slot}, {"worker_pid", worker.pid}, {"reason", std::string(reason)}};
  if (exit.status.kind == ExitStatus::Kind::Exited) {
    fields.add("exit_code", exit.status.code);
  } else {
    fields.add("signal", signalName(exit.status.code));
  }
  if (worker.stop_sent_at) {
    const auto stopping = std::chrono::duration_cast<Duration>(clock_.now() - *worker.stop_sent_at);
    fields.add("duration_ms", stopping.count());
    if (isGracefulStop(worker.cause) && !exit.status.signaledBy(SIGKILL)) {
      metrics_.drain_duration.observe(std::chrono::duration<double>(stopping).count());
    }
  }
  const auto level = worker.cause == StopCause::None ? spdlog::level::warn : spdlog::level::info;
  spdlog::log(level, "worker {} exited (pid {}): {} ({})", worker.slot, worker.pid,
              exit.status.str(), reason);
  return worker;
}

// The respawn policy, in one place: a first boot that fails ends corral; a replacement that
// fails ends its roll or leaves the old worker serving; any other slot left empty is refilled,
// at once for a worker corral replaced itself, with backoff for a crash.
void Supervisor::respawnAfter(const Worker& worker, const ExitStatus& status) {
  if (isBootFailure(worker, status)) return failBoot(worker, status);
  if (worker.succession && !worker.ready_at) {
    onSuccessorFailed(worker, status);
  } else if (slotNeedsWorker(worker.slot)) {
    if (!worker.error.empty()) {
      spdlog::error("worker {} failed to start:\n{}", worker.slot, worker.error);
    }
    if (worker.cause == StopCause::Superseded) {
      spawnWorker(worker.slot);
    } else {
      scheduleRespawn(worker.slot, worker.ready_at);
    }
  }
  notifyStatus();
}

// Only the first boot of a run can fail the whole run: once any worker has served, a worker
// that cannot start again is respawned with backoff (a database down for a minute should not
// stop the service), and new code that cannot boot on reload leaves the old code serving.
bool Supervisor::isBootFailure(const Worker& worker, const ExitStatus& status) const {
  if (ever_ready_ || worker.cause != StopCause::None) return false;
  return !worker.error.empty() || status.exitedWith(kExitBootFailure);
}

void Supervisor::failBoot(const Worker& worker, const ExitStatus& status) {
  exit_code_ = worker.config_error ? kExitUsage : kExitBootFailure;
  if (worker.config_error) {
    spdlog::error("--python {}: {}", config_.python, worker.error);
  } else if (!worker.error.empty()) {
    spdlog::error("app failed to boot:\n{}", worker.error);
  } else {
    spdlog::error("app failed to boot: worker {} ended with {} before it was ready", worker.slot,
                  status.str());
  }
  draining_reason_ = worker.config_error ? "workers cannot run" : "app failed to boot";
  cancelRespawns();
  for (Worker& other : pool_) stopWorker(other, StopCause::BootFailure, SIGKILL, true);
  transitionTo(State::DrainKill, draining_reason_);
  finishIfEmpty();
}

bool Supervisor::slotNeedsWorker(int slot) const {
  return slot < target_ && !pool_.slotServed(slot);
}

void Supervisor::scheduleRespawn(int slot, std::optional<TimePoint> ready_at) {
  Slot& s = slots_[static_cast<std::size_t>(slot)];
  const std::chrono::milliseconds delay = s.backoff.onCrash(ready_at, clock_.now());
  if (delay == std::chrono::milliseconds::zero()) {
    spawnWorker(slot);
    return;
  }
  spdlog::warn("worker {} respawning in {} ({} failures in a row)", slot, formatDuration(delay),
               s.backoff.streak());
  if (!s.respawn) {
    s.respawn = clock_.createTimer([this, slot] { handle(Event::respawnDue(slot)); });
  }
  s.respawn->enable(delay);
}

void Supervisor::revive(int slot) {
  if (slotNeedsWorker(slot)) spawnWorker(slot);
}

void Supervisor::cancelRespawns() {
  for (Slot& slot : slots_) {
    if (slot.respawn) slot.respawn->disable();
  }
}

}  // namespace corral
