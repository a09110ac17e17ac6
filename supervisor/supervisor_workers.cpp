// One worker's life under the supervisor: spawn, READY, heartbeats, deadlines, exit, respawn.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstring>

#include "config/exit_codes.hpp"
#include "supervisor/control_message.hpp"
#include "supervisor/supervisor.hpp"
#include "supervisor/supervisor_timing.hpp"

namespace corral {
namespace {

long long millisSince(TimePoint start, TimePoint now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count();
}

}  // namespace

Supervisor::Worker* Supervisor::find(Pid pid) {
  const auto it = workers_.find(pid);
  return it == workers_.end() ? nullptr : &it->second;
}

// The spawner first gets ready for a generation (its worker template boots), so that the
// generation's workers start in milliseconds; `then` runs once it is, unless corral is stopping
// or a newer generation has begun meanwhile.
void Supervisor::prepareGeneration(std::function<void()> then) {
  SpawnSpec spec = command_.specFor(0);
  spec.generation = generation_;
  preparing_ = true;
  spawner_.prepare(spec, [this, generation = generation_, then = std::move(then)] {
    if (generation != generation_ || state_ == State::Draining || state_ == State::Stopped) {
      return;
    }
    preparing_ = false;
    then();
  });
}

void Supervisor::fillSlots() {
  for (int slot = 0; slot < target_; ++slot) {
    if (slotNeedsWorker(slot)) spawnWorker(slot);
  }
}

Supervisor::Worker* Supervisor::spawnWorker(int slot, Pid replaces, StopCause why) {
  int max_requests = config_.max_requests;
  if (max_requests > 0 && config_.max_requests_jitter > 0 && hooks_.random) {
    // Drawn per worker, so that workers started together do not all recycle together.
    max_requests += hooks_.random(config_.max_requests_jitter);
  }
  SpawnSpec spec = command_.specFor(slot, max_requests);
  spec.generation = generation_;
  const SpawnResult result = spawner_.spawn(spec);
  if (!result.ok()) {
    ++metrics_.spawn_failures;
    spdlog::error("worker {} could not be started: {}", slot, std::strerror(result.error));
    if (replaces < 0) scheduleRespawn(slot, std::nullopt);
    return nullptr;
  }
  const Pid pid = result.pid;
  Worker& worker = workers_[pid];
  worker.slot = slot;
  worker.pid = pid;
  worker.generation = generation_;
  worker.spawned_at = clock_.now();
  worker.replaces = replaces;
  worker.deadline = clock_.createTimer([this, pid] { onDeadline(pid); });
  worker.deadline->enable(config_.startup_timeout);
  if (Worker* old = find(replaces)) old->replacing_for = why;
  ++metrics_.worker_spawns;
  if (result.forked) ++metrics_.worker_forks;
  spdlog::info("worker {} spawned (pid {}){}{}", slot, pid,
               replaces < 0 ? "" : fmt::format(" to take over from pid {}", replaces),
               result.forked ? ", forked from the template" : "");
  return &worker;
}

void Supervisor::onChildMessage(Pid pid, std::string_view datagram) {
  Worker* worker = find(pid);
  if (worker == nullptr) return;
  const ControlMessage message = ControlMessage::parse(datagram);
  switch (message.kind) {
    case ControlMessage::Kind::Ready: onReady(*worker); break;
    case ControlMessage::Kind::Watchdog: onHeartbeat(*worker); break;
    case ControlMessage::Kind::Recycle:
      replaceWorker(*worker, StopCause::Recycle, message.text);
      break;
    case ControlMessage::Kind::Status:
      spdlog::debug("worker {} (pid {}): {}", worker->slot, pid, message.text);
      break;
    case ControlMessage::Kind::BootError:
    case ControlMessage::Kind::ConfigError:
      if (worker->error.empty()) worker->error = message.text;
      worker->config_error = message.kind == ControlMessage::Kind::ConfigError;
      break;
    case ControlMessage::Kind::Unknown:
      spdlog::debug("worker {} (pid {}) sent an unknown message: {}", worker->slot, pid,
                    message.text);
      break;
  }
}

void Supervisor::onReady(Worker& worker) {
  if (worker.state != WorkerState::Starting) return;  // stopping already, or a duplicate
  const TimePoint now = clock_.now();
  worker.state = WorkerState::Ready;
  worker.ready_at = now;
  ever_ready_ = true;
  spdlog::info("worker {} ready (pid {}) in {}ms", worker.slot, worker.pid,
               millisSince(worker.spawned_at, now));
  if (config_.timeout.count() > 0) {
    worker.deadline->enable(config_.timeout);
  } else {
    worker.deadline->disable();
  }
  if (worker.replaces >= 0) onSuccessorReady(worker);
  if (state_ == State::Starting && readyCount() == target_) {
    transitionTo(State::Running, "all " + std::to_string(target_) + " workers ready");
  } else if (state_ == State::Reloading) {
    continueRoll();
  } else {
    notifyStatus();
  }
}

void Supervisor::onHeartbeat(Worker& worker) {
  if (worker.state == WorkerState::Ready && config_.timeout.count() > 0) {
    worker.deadline->enable(config_.timeout);
  }
}

void Supervisor::onDeadline(Pid pid) {
  Worker* worker = find(pid);
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
  spdlog::warn("worker {} {} (pid {}): {}, sending SIGABRT", worker.slot,
               cause == StopCause::Hung ? "hung" : "startup timed out", worker.pid, what);
  stopWorker(worker, cause, SIGABRT, false);
  worker.deadline->enable(kKillGrace);
}

void Supervisor::stopWorker(Worker& worker, StopCause cause, int signo, bool whole_group) {
  worker.state = WorkerState::Stopping;
  worker.cause = cause;
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

void Supervisor::onChildExit(Pid pid, ExitStatus status) {
  const auto it = workers_.find(pid);
  if (it == workers_.end()) {
    ++metrics_.orphans_reaped;
    spdlog::debug("reaped orphan pid {} ({})", pid, status.str());
    return;
  }
  const Worker worker = std::move(it->second);
  workers_.erase(it);
  handleWorkerGone(worker, status);
}

void Supervisor::handleWorkerGone(const Worker& worker, ExitStatus status) {
  const std::string_view reason = exitReason(worker, status);
  ++metrics_.worker_exits[std::string(reason)];
  const auto level = worker.cause == StopCause::None ? spdlog::level::warn : spdlog::level::info;
  spdlog::log(level, "worker {} exited (pid {}): {} ({})", worker.slot, worker.pid, status.str(),
              reason);
  if (state_ == State::Draining || state_ == State::Stopped) {
    finishIfEmpty();
    return;
  }
  if (isBootFailure(worker, status)) {
    failBoot(worker, status);
    return;
  }
  if (worker.replaces >= 0 && !worker.ready_at) {
    onSuccessorFailed(worker, status);
  } else if (slotNeedsWorker(worker.slot)) {
    if (!worker.error.empty()) {
      spdlog::error("worker {} failed to start:\n{}", worker.slot, worker.error);
    }
    // A worker corral replaced is not a failure of its slot: no backoff.
    if (worker.cause == StopCause::Superseded) {
      spawnWorker(worker.slot);
    } else {
      scheduleRespawn(worker.slot, worker.ready_at);
    }
  }
  notifyStatus();
}

std::string_view Supervisor::exitReason(const Worker& worker, ExitStatus status) {
  switch (worker.cause) {
    case StopCause::Hung: return "hung";
    case StopCause::StartupTimeout: return "startup-timeout";
    case StopCause::Drain:
      return status.signaledBy(SIGKILL) ? "killed at drain deadline" : "drained";
    case StopCause::Reload: return "reloaded";
    case StopCause::Recycle: return "recycled";
    case StopCause::ScaleDown: return "scaled down";
    case StopCause::Superseded: return "superseded";
    case StopCause::Quick:
    case StopCause::BootFailure: return "stopped";
    case StopCause::None: break;
  }
  if (worker.config_error) return "cannot run";
  if (!worker.error.empty()) return "boot failure";
  return status.exitedWith(0) ? "exited" : "crash";
}

// Only the first boot of a run can fail the whole run: once any worker has served, a worker
// that cannot start again is respawned with backoff (a database down for a minute should not
// stop the service), and new code that cannot boot on reload leaves the old code serving.
bool Supervisor::isBootFailure(const Worker& worker, ExitStatus status) const {
  if (ever_ready_ || worker.cause != StopCause::None) return false;
  return !worker.error.empty() || status.exitedWith(kExitBootFailure);
}

void Supervisor::failBoot(const Worker& worker, ExitStatus status) {
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
  quick_ = true;
  cancelRespawns();
  stopAll(StopCause::BootFailure);
  transitionTo(State::Draining, draining_reason_);
  finishIfEmpty();
}

// A slot is served by its one live worker; during a replacement it briefly has two.
bool Supervisor::slotNeedsWorker(int slot) const {
  if (slot >= target_) return false;
  return std::none_of(workers_.begin(), workers_.end(), [slot](const auto& entry) {
    return entry.second.slot == slot && entry.second.state != WorkerState::Stopping;
  });
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
    s.respawn = clock_.createTimer([this, slot] {
      if (slotNeedsWorker(slot)) spawnWorker(slot);
    });
  }
  s.respawn->enable(delay);
}

void Supervisor::cancelRespawns() {
  for (Slot& slot : slots_) {
    if (slot.respawn) slot.respawn->disable();
  }
}

}  // namespace corral
