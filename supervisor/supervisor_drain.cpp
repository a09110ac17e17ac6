// The ways out. A graceful drain goes DrainDelay -> DrainGate -> DrainStop: serve on with
// /ready failing, then serve the listen queues with new connections gated, then let the workers
// finish what is in flight. A quick stop (DrainQuick) interrupts them; DrainKill is the end of
// every patience. Each ends in Stopped once the last worker is reaped.

#include <spdlog/spdlog.h>

#include <csignal>

#include "config/exit_codes.hpp"
#include "supervisor/supervisor.hpp"
#include "supervisor/timing.hpp"
#include "util/text.hpp"

namespace corral {

void Supervisor::drain(const Event& event) {
  draining_reason_ = event.why;
  cancelRespawns();
  if (config_.drain_delay <= Duration::zero()) {
    transitionTo(State::DrainGate, event.why);
    return gate();
  }
  // Load balancers and Kubernetes endpoints take a while to notice /ready failing; until then
  // they still send traffic, which the workers keep serving.
  transitionTo(State::DrainDelay, event.why);
  spdlog::info("drain: /ready fails now; workers keep serving for {} (--drain-delay)",
               formatDuration(config_.drain_delay));
  drain_delay_->enable(config_.drain_delay);
}

// Connections the kernel has already queued are served before the workers are told to stop:
// new ones are gated first (gunicorn #3397 is this, still open there).
void Supervisor::gate() {
  if (state_ == State::DrainDelay) {
    transitionTo(State::DrainGate,
                 "--drain-delay " + formatDuration(config_.drain_delay) + " over");
  }
  drain_deadline_->enable(config_.graceful_timeout);
  if (hooks_.gate_listeners) hooks_.gate_listeners();
  const std::size_t queued = hooks_.queued_connections ? hooks_.queued_connections() : 0;
  if (queued > 0) {
    spdlog::info("drain: no new connections; serving the {} waiting in the listen queue first",
                 queued);
  }
  pollQueues();
}

// DrainGate's sensor: once nothing waits in the queues, or no worker is left to take it, the
// workers can be told to stop.
void Supervisor::pollQueues() {
  const std::size_t queued = hooks_.queued_connections ? hooks_.queued_connections() : 0;
  if (queued > 0 && !pool_.empty()) {
    queue_poll_->enable(kQueuePollInterval);
    return;
  }
  handle(Event::timer(EventKind::QueuesEmpty));
}

// A worker still booting holds no connection, so no drain waits for it: it gets SIGTERM (whose
// default action ends it cleanly before uvicorn installs its handlers) and, since uvicorn
// finishes lifespan startup before it looks at the signal, SIGKILL shortly after.
void Supervisor::stopWorkers() {
  for (Worker& worker : pool_) {
    if (worker.state == WorkerState::Stopping) continue;  // already on its way out
    const bool booting = worker.state == WorkerState::Starting;
    stopWorker(worker, StopCause::Drain, SIGTERM, false);
    if (booting) worker.deadline->enable(kQuickGrace);
  }
  transitionTo(State::DrainStop, "listen queues empty");
  spdlog::info("drain: {} finishing in-flight requests, deadline {}",
               plural(pool_.size(), "worker"), formatDuration(config_.graceful_timeout));
  finishIfEmpty();
}

void Supervisor::quickStop(std::string why, int exit_code) {
  if (exit_code_ == kExitOk) exit_code_ = exit_code;
  draining_reason_ = std::move(why);
  drain_delay_->disable();
  queue_poll_->disable();
  cancelRespawns();
  for (Worker& worker : pool_) {
    const bool booting = worker.state == WorkerState::Starting;
    stopWorker(worker, StopCause::Quick, booting ? SIGKILL : SIGINT, booting);
  }
  transitionTo(State::DrainQuick, draining_reason_);
  spdlog::info("quick stop ({}): workers get {} to exit", draining_reason_,
               formatDuration(kQuickGrace));
  drain_deadline_->enable(kQuickGrace);
  finishIfEmpty();
}

void Supervisor::killAll(std::string_view why) {
  queue_poll_->disable();
  drain_deadline_->disable();
  transitionTo(State::DrainKill, why);
  for (const Worker& worker : pool_) {
    spdlog::warn("worker {} (pid {}) still running, sending SIGKILL ({})", worker.slot, worker.pid,
                 why);
    spawner_.signal(worker.pid, SIGKILL, true);
  }
  finishIfEmpty();
}

void Supervisor::finishIfEmpty() {
  if (!pool_.empty() || state_ == State::DrainDelay) return;
  drain_deadline_->disable();
  queue_poll_->disable();
  memory_poll_->disable();
  transitionTo(State::Stopped, "all workers exited");
  if (hooks_.on_stopped) hooks_.on_stopped(exit_code_);
}

}  // namespace corral
