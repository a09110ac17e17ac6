#include "supervisor/supervisor.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstring>

#include "config/exit_codes.hpp"
#include "supervisor/control_message.hpp"

namespace corral {
namespace {

using std::chrono::milliseconds;

/// After SIGABRT (faulthandler prints the stack, then the process aborts), SIGKILL follows if
/// the worker is still there: it may be stuck in the kernel.
constexpr milliseconds kKillGrace{3000};
/// A quick stop lets workers close their sockets for this long, then kills them.
constexpr milliseconds kQuickGrace{1000};

long long millisSince(TimePoint start, TimePoint now) {
  return std::chrono::duration_cast<milliseconds>(now - start).count();
}

}  // namespace

std::string_view stateName(State state) {
  switch (state) {
    case State::Starting: return "Starting";
    case State::Running: return "Running";
    case State::Draining: return "Draining";
    case State::Stopped: return "Stopped";
  }
  return "?";
}

Supervisor::Supervisor(const Config& config, Clock& clock, ProcessSpawner& spawner,
                       WorkerCommand command, Hooks hooks)
    : config_(config),
      clock_(clock),
      spawner_(spawner),
      command_(std::move(command)),
      hooks_(std::move(hooks)),
      slots_(static_cast<std::size_t>(config.workers)),
      drain_deadline_(clock.createTimer([this] { onDrainDeadline(); })) {
  spawner_.setListener(*this);
}

Supervisor::~Supervisor() = default;

// The one place state_ changes.
void Supervisor::transitionTo(State next, std::string_view why) {
  spdlog::info("state {} -> {} ({})", stateName(state_), stateName(next), why);
  state_ = next;
  switch (next) {
    case State::Running:
      notify("READY=1");  // once every worker serves, unlike gunicorn's before any has booted
      break;
    case State::Draining:
      // The drain may outlast systemd's stop timeout; ask for what it needs, plus a margin.
      notify(fmt::format("STOPPING=1\nEXTEND_TIMEOUT_USEC={}",
                         (quick_ ? kQuickGrace : config_.graceful_timeout + kKillGrace).count() * 1000));
      break;
    case State::Starting:
    case State::Stopped:
      break;
  }
  notifyStatus();
}

void Supervisor::notify(const std::string& message) const {
  if (hooks_.notify) hooks_.notify(message);
}

void Supervisor::notifyStatus() const {
  const SupervisorStatus s = status();
  std::string text = fmt::format("STATUS={}: {} of {} workers ready", stateName(s.state), s.ready, s.target);
  if (!s.draining_reason.empty()) text += " (" + s.draining_reason + ")";
  notify(text);
}

void Supervisor::start() {
  spdlog::info("starting {} worker{} ({}) for {} with {}", config_.workers,
               config_.workers == 1 ? "" : "s", config_.workers_reason, config_.app,
               config_.python);
  for (int slot = 0; slot < config_.workers; ++slot) spawnWorker(slot);
}

void Supervisor::spawnWorker(int slot) {
  const SpawnResult result = spawner_.spawn(command_.specFor(slot));
  if (!result.ok()) {
    ++metrics_.spawn_failures;
    spdlog::error("worker {} could not be started: {}", slot, std::strerror(result.error));
    scheduleRespawn(slot, std::nullopt);
    return;
  }
  const Pid pid = result.pid;
  Worker worker;
  worker.slot = slot;
  worker.pid = pid;
  worker.spawned_at = clock_.now();
  worker.deadline = clock_.createTimer([this, pid] { onDeadline(pid); });
  worker.deadline->enable(config_.startup_timeout);
  workers_.emplace(pid, std::move(worker));
  ++metrics_.worker_spawns;
  spdlog::info("worker {} spawned (pid {})", slot, pid);
}

void Supervisor::onChildMessage(Pid pid, std::string_view datagram) {
  const auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  Worker& worker = it->second;
  const ControlMessage message = ControlMessage::parse(datagram);
  switch (message.kind) {
    case ControlMessage::Kind::Ready: onReady(worker); break;
    case ControlMessage::Kind::Watchdog: onHeartbeat(worker); break;
    case ControlMessage::Kind::Status:
      spdlog::debug("worker {} (pid {}): {}", worker.slot, pid, message.text);
      break;
    case ControlMessage::Kind::BootError:
    case ControlMessage::Kind::ConfigError:
      if (worker.error.empty()) worker.error = message.text;
      worker.config_error = message.kind == ControlMessage::Kind::ConfigError;
      break;
    case ControlMessage::Kind::Unknown:
      spdlog::debug("worker {} (pid {}) sent an unknown message: {}", worker.slot, pid,
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
  if (state_ == State::Starting && readyCount() == config_.workers) {
    transitionTo(State::Running, "all " + std::to_string(config_.workers) + " workers ready");
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
  const auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  Worker& worker = it->second;
  switch (worker.state) {
    case WorkerState::Starting:
      abortWorker(worker, StopCause::StartupTimeout,
                  "not ready after " + formatDuration(config_.startup_timeout));
      break;
    case WorkerState::Ready:
      abortWorker(worker, StopCause::Hung, "no heartbeat for " + formatDuration(config_.timeout));
      break;
    case WorkerState::Stopping:
      spdlog::warn("worker {} (pid {}) did not exit in time, sending SIGKILL", worker.slot, pid);
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
  notifyStatus();
  if (!worker.error.empty()) spdlog::error("worker {} failed to start:\n{}", worker.slot, worker.error);
  scheduleRespawn(worker.slot, worker.ready_at);
}

std::string_view Supervisor::exitReason(const Worker& worker, ExitStatus status) {
  switch (worker.cause) {
    case StopCause::Hung: return "hung";
    case StopCause::StartupTimeout: return "startup-timeout";
    case StopCause::Drain: return status.signaledBy(SIGKILL) ? "killed at drain deadline" : "drained";
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
// stop the service).
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
    spdlog::error("app failed to boot: worker {} ended with {} before it was ready",
                  worker.slot, status.str());
  }
  draining_reason_ = worker.config_error ? "workers cannot run" : "app failed to boot";
  quick_ = true;
  cancelRespawns();
  stopAll(StopCause::BootFailure);
  transitionTo(State::Draining, draining_reason_);
  finishIfEmpty();
}

void Supervisor::scheduleRespawn(int slot, std::optional<TimePoint> ready_at) {
  Slot& s = slots_[static_cast<std::size_t>(slot)];
  const milliseconds delay = s.backoff.onCrash(ready_at, clock_.now());
  if (delay == milliseconds::zero()) {
    spawnWorker(slot);
    return;
  }
  spdlog::warn("worker {} respawning in {} ({} failures in a row)", slot, formatDuration(delay),
               s.backoff.streak());
  if (!s.respawn) s.respawn = clock_.createTimer([this, slot] { spawnWorker(slot); });
  s.respawn->enable(delay);
}

void Supervisor::cancelRespawns() {
  for (Slot& slot : slots_) {
    if (slot.respawn) slot.respawn->disable();
  }
}

void Supervisor::gracefulStop(std::string_view why) {
  switch (state_) {
    case State::Starting:
    case State::Running:
      draining_reason_ = why;
      cancelRespawns();
      stopAll(StopCause::Drain);
      transitionTo(State::Draining, why);
      drain_deadline_->enable(config_.graceful_timeout);
      spdlog::info("drain: {} worker{} finishing in-flight requests, deadline {}", workers_.size(),
                   workers_.size() == 1 ? "" : "s", formatDuration(config_.graceful_timeout));
      finishIfEmpty();
      break;
    case State::Draining:
      quickStop(std::string(why) + " during drain", exit_code_);
      break;
    case State::Stopped:
      break;  // nop
  }
}

void Supervisor::quickStop(std::string_view why, int exit_code) {
  if (state_ == State::Stopped) return;
  if (quick_) {  // asked again: nothing is left to wait for
    onDrainDeadline();
    return;
  }
  if (exit_code_ == kExitOk) exit_code_ = exit_code;
  draining_reason_ = why;
  quick_ = true;
  cancelRespawns();
  stopAll(StopCause::Quick);
  if (state_ != State::Draining) transitionTo(State::Draining, why);
  spdlog::info("quick stop ({}): workers get {} to exit", why, formatDuration(kQuickGrace));
  drain_deadline_->enable(kQuickGrace);
  finishIfEmpty();
}

// A worker still booting holds no connection, so no drain waits for it: it gets SIGTERM (whose
// default action ends it cleanly before uvicorn installs its handlers) and, since uvicorn
// finishes lifespan startup before it looks at the signal, SIGKILL shortly after.
void Supervisor::stopAll(StopCause cause) {
  for (auto& [pid, worker] : workers_) {
    if (worker.state == WorkerState::Stopping && worker.cause != StopCause::Drain) continue;
    const bool booting = worker.state == WorkerState::Starting;
    switch (cause) {
      case StopCause::Drain:
        stopWorker(worker, cause, SIGTERM, false);
        if (booting) worker.deadline->enable(kQuickGrace);
        break;
      case StopCause::Quick: stopWorker(worker, cause, booting ? SIGKILL : SIGINT, booting); break;
      default: stopWorker(worker, cause, SIGKILL, true); break;
    }
  }
}

void Supervisor::onDrainDeadline() {
  for (auto& [pid, worker] : workers_) {
    spdlog::warn("worker {} (pid {}) still running at the {} deadline, sending SIGKILL",
                 worker.slot, pid, quick_ ? "quick stop" : "drain");
    spawner_.signal(pid, SIGKILL, true);
  }
}

void Supervisor::finishIfEmpty() {
  if (state_ != State::Draining || !workers_.empty()) return;
  drain_deadline_->disable();
  transitionTo(State::Stopped, "all workers exited");
  if (hooks_.on_stopped) hooks_.on_stopped(exit_code_);
}

int Supervisor::readyCount() const {
  return static_cast<int>(std::count_if(workers_.begin(), workers_.end(), [](const auto& entry) {
    return entry.second.state == WorkerState::Ready;
  }));
}

SupervisorStatus Supervisor::status() const {
  SupervisorStatus s;
  s.state = state_;
  s.target = config_.workers;
  s.alive = static_cast<int>(workers_.size());
  s.ready = readyCount();
  s.required = config_.min_ready > 0 ? config_.min_ready : config_.workers;
  s.draining_reason = draining_reason_;
  return s;
}

}  // namespace corral
