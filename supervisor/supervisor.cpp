// The supervisor's states and the ways out of them: drains, quick stops, and the admin view.
// One worker's life is in supervisor_workers.cpp; reload, scaling and recycling in
// supervisor_roll.cpp.

#include "supervisor/supervisor.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>

#include "config/exit_codes.hpp"
#include "supervisor/sd_notify.hpp"
#include "supervisor/supervisor_timing.hpp"

namespace corral {

std::string_view stateName(State state) {
  switch (state) {
    case State::Starting: return "Starting";
    case State::Running: return "Running";
    case State::Reloading: return "Reloading";
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
      target_(config.workers),
      slots_(static_cast<std::size_t>(config.workers)),
      drain_deadline_(clock.createTimer([this] { onDrainDeadline(); })),
      drain_delay_(clock.createTimer([this] { beginDrain(); })),
      queue_poll_(clock.createTimer([this] { awaitEmptyQueues(); })),
      memory_poll_(clock.createTimer([this] { checkMemory(); })) {
  spawner_.setListener(*this);
}

Supervisor::~Supervisor() = default;

// The one place state_ changes.
void Supervisor::transitionTo(State next, std::string_view why) {
  spdlog::info("state {} -> {} ({})", stateName(state_), stateName(next), why);
  state_ = next;
  switch (next) {
    case State::Running:
      // Once every worker serves (gunicorn sends it before any has booted); after a roll, it
      // also ends the RELOADING=1 that began it.
      notify("READY=1");
      break;
    case State::Reloading:
      notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", monotonicMicros()));
      break;
    case State::Draining: {
      // The drain may outlast systemd's stop timeout; ask for what it needs, plus a margin.
      const Duration needed =
          quick_ ? kQuickGrace : config_.drain_delay + config_.graceful_timeout + kKillGrace;
      notify(fmt::format("STOPPING=1\nEXTEND_TIMEOUT_USEC={}", needed.count() * 1000));
      break;
    }
    case State::Starting:
    case State::Stopped: break;
  }
  notifyStatus();
}

void Supervisor::notify(const std::string& message) const {
  if (hooks_.notify) hooks_.notify(message);
}

void Supervisor::notifyStatus() const {
  const SupervisorStatus s = status();
  std::string text =
      fmt::format("STATUS={}: {} of {} workers ready", stateName(s.state), s.ready, s.target);
  if (!s.draining_reason.empty()) text += " (" + s.draining_reason + ")";
  notify(text);
}

void Supervisor::start() {
  spdlog::info("starting {} worker{} ({}) for {} with {}", config_.workers,
               config_.workers == 1 ? "" : "s", config_.workers_reason, config_.app,
               config_.python);
  prepareGeneration([this] { fillSlots(); });
  if (config_.max_worker_memory) memory_poll_->enable(kMemoryCheckInterval);
}

void Supervisor::gracefulStop(std::string_view why) {
  switch (state_) {
    case State::Starting:
    case State::Running:
    case State::Reloading:
      draining_reason_ = why;
      transitionTo(State::Draining, why);
      if (config_.drain_delay > Duration::zero()) {
        // Load balancers and Kubernetes endpoints take a while to notice /ready failing;
        // until then they still send traffic, which the workers keep serving.
        spdlog::info("drain: /ready fails now; workers keep serving for {} (--drain-delay)",
                     formatDuration(config_.drain_delay));
        drain_delay_->enable(config_.drain_delay);
      } else {
        beginDrain();
      }
      break;
    case State::Draining: quickStop(std::string(why) + " during drain", exit_code_); break;
    case State::Stopped: break;  // nop
  }
}

// Connections the kernel has already queued are served before the workers are told to stop:
// new ones are gated first (gunicorn #3397 is this, still open there).
void Supervisor::beginDrain() {
  cancelRespawns();
  drain_deadline_->enable(config_.graceful_timeout);
  if (hooks_.gate_listeners) hooks_.gate_listeners();
  const std::size_t queued = hooks_.queued_connections ? hooks_.queued_connections() : 0;
  if (queued > 0) {
    spdlog::info("drain: no new connections; serving the {} waiting in the listen queue first",
                 queued);
  }
  awaitEmptyQueues();
}

void Supervisor::awaitEmptyQueues() {
  if (quick_ || state_ != State::Draining) return;
  const std::size_t queued = hooks_.queued_connections ? hooks_.queued_connections() : 0;
  if (queued > 0 && !workers_.empty()) {
    queue_poll_->enable(kQueuePollInterval);
    return;
  }
  stopAll(StopCause::Drain);
  spdlog::info("drain: {} worker{} finishing in-flight requests, deadline {}", workers_.size(),
               workers_.size() == 1 ? "" : "s", formatDuration(config_.graceful_timeout));
  notifyStatus();
  finishIfEmpty();
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
  drain_delay_->disable();
  queue_poll_->disable();
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
    const bool booting = worker.state == WorkerState::Starting;
    switch (cause) {
      case StopCause::Drain:
        if (worker.state == WorkerState::Stopping) break;  // already on its way out
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
  if (state_ != State::Draining || !workers_.empty() || drain_delay_->enabled()) return;
  drain_deadline_->disable();
  queue_poll_->disable();
  memory_poll_->disable();
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
  s.target = target_;
  s.alive = static_cast<int>(workers_.size());
  s.ready = readyCount();
  s.required = config_.min_ready > 0 ? std::min(config_.min_ready, target_) : target_;
  s.generation = generation_;
  s.draining_reason = draining_reason_;
  s.reload_error = reload_error_;
  s.workers_reason = config_.workers_reason;
  if (hooks_.queued_connections) s.queued = hooks_.queued_connections();
  return s;
}

}  // namespace corral
