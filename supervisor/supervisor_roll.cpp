// Replacing workers without a gap: rolling reload (SIGHUP), scaling (SIGTTIN/SIGTTOU) and
// recycling (--max-requests, --max-worker-memory). A replacement is always started first; the
// worker it replaces is told to stop only once the new one is READY (nginx's overlapping
// generations, one slot at a time).

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "config/size.hpp"
#include "supervisor/supervisor.hpp"
#include "supervisor/timing.hpp"

namespace corral {

void Supervisor::roll(const Event& event) {
  ++generation_;
  ++metrics_.reloads;
  template_generation_ = generation_;  // a new template: an upgraded uvicorn is picked up too
  reload_error_.clear();
  // Replacements still booting from an earlier roll run older code than what is asked for now.
  for (Worker& worker : pool_) {
    if (worker.state == WorkerState::Starting && worker.succession) supersede(worker);
  }
  transitionTo(State::Reloading,
               fmt::format("{}: rolling to generation {}", event.why, generation_));
  prepareGeneration();
}

void Supervisor::resume(int generation) {
  if (generation != generation_) return;  // stale: a newer SIGHUP came meanwhile
  prepared_generation_ = generation;
  fillSlots();  // a SIGHUP while the first workers were being prepared
  continueRoll();
}

// Starts replacements up to --max-surge at a time, oldest slots first, until every slot is
// served by a READY worker of the current generation. Nothing starts before the spawner is
// ready for the new code.
void Supervisor::continueRoll() {
  if (prepared_generation_ != generation_) return;
  int in_flight = pool_.bootingSuccessors();
  bool outdated = false;
  for (int slot = 0; slot < target_; ++slot) {
    for (Worker& worker : pool_) {
      if (worker.slot != slot || worker.state == WorkerState::Stopping ||
          worker.generation == generation_) {
        continue;
      }
      outdated = true;
      if (worker.state == WorkerState::Starting) {
        retireWorker(worker, StopCause::Superseded);  // not serving yet: respawned anew
      } else if (!pool_.successorOf(worker.pid) && in_flight < config_.max_surge) {
        ++in_flight;
        if (!spawnWorker(slot, Succession{worker.pid, StopCause::Reload})) {
          return abortRoll("the new worker could not be started");
        }
      }
      break;
    }
  }
  if (!outdated && in_flight == 0 && pool_.readyCount() >= target_) {
    transitionTo(State::Running, fmt::format("reload to generation {} complete", generation_));
  }
}

// The app on disk does not boot: the workers serving now keep serving it as they have it.
void Supervisor::abortRoll(std::string why) {
  reload_error_ = std::move(why);
  ++metrics_.reload_failures;
  spdlog::error("reload to generation {} failed; the old workers keep serving:\n{}", generation_,
                reload_error_);
  for (Worker& worker : pool_) {
    if (worker.state == WorkerState::Starting && worker.succession) supersede(worker);
  }
  transitionTo(State::Running, "reload failed");
}

// Stops a replacement that is still booting; the worker it was to replace is free to be
// replaced again, and the stopped one's exit is nobody's failure.
void Supervisor::supersede(Worker& successor) {
  successor.succession.reset();
  retireWorker(successor, StopCause::Superseded);
}

// Starts a successor for a worker that asks to be recycled; it keeps serving until the
// successor is READY. A worker already being replaced is left alone, and so is one that the
// roll under way replaces anyway.
void Supervisor::replace(const Event& event) {
  Worker* worker = pool_.find(event.pid);
  if (worker == nullptr || worker->state != WorkerState::Ready || pool_.successorOf(event.pid)) {
    return;
  }
  const bool replaced_anyway = state_ == State::Reloading || state_ == State::Restarting;
  if (replaced_anyway && worker->generation != generation_) return;
  spdlog::info("worker {} (pid {}) {}: starting its replacement", worker->slot, worker->pid,
               event.why);
  spawnWorker(worker->slot, Succession{worker->pid, StopCause::Recycle});
}

void Supervisor::onSuccessorReady(Worker& successor) {
  const Succession succession = *successor.succession;
  successor.succession.reset();
  Worker* old = pool_.find(succession.replaces);
  if (old == nullptr || old->state == WorkerState::Stopping) return;  // it went on its own
  retireWorker(*old, succession.cause);
}

// The old worker keeps serving (recycling asks again at its next limit check), unless it went
// meanwhile: then the slot is empty, and refilled as after a crash.
void Supervisor::onSuccessorFailed(const Worker& successor, const ExitStatus& status) {
  if (state_ == State::Reloading && successor.generation == generation_) {
    abortRoll(successor.error.empty()
                  ? fmt::format("the new worker ended with {} before it was ready", status.str())
                  : successor.error);
  } else if (!successor.error.empty()) {
    spdlog::error("worker {} replacement failed to start:\n{}", successor.slot, successor.error);
  }
  if (slotNeedsWorker(successor.slot)) scheduleRespawn(successor.slot, std::nullopt);
}

void Supervisor::grow() {
  ++target_;
  slots_.resize(static_cast<std::size_t>(target_));
  spdlog::info("scaling up to {} workers (SIGTTIN)", target_);
  spawnWorker(target_ - 1);
  notifyStatus();
}

void Supervisor::shrink() {
  if (target_ == 1) {
    spdlog::info("SIGTTOU ignored: corral keeps at least one worker");
    return;
  }
  --target_;
  spdlog::info("scaling down to {} workers (SIGTTOU)", target_);
  for (Worker& worker : pool_) {
    if (worker.slot == target_ && worker.state != WorkerState::Stopping) {
      retireWorker(worker, StopCause::ScaleDown);
    }
  }
  slots_.resize(static_cast<std::size_t>(target_));
  afterPoolChange();
}

// A worker over the limit at two checks in a row is replaced: one high reading may be a
// request's transient peak that the allocator hands back.
void Supervisor::checkMemory() {
  const std::uint64_t limit = *config_.max_worker_memory;
  std::vector<Event> over;
  for (Worker& worker : pool_) {
    if (worker.state != WorkerState::Ready || pool_.successorOf(worker.pid)) continue;
    const auto resident = spawner_.residentBytes(worker.pid);
    if (!resident || *resident <= limit) {
      worker.memory_strikes = 0;
    } else if (++worker.memory_strikes >= 2) {
      over.push_back(Event::worker(
          EventKind::WorkerOverMemory, worker.pid,
          fmt::format("uses {:.1f}Mi of memory, above --max-worker-memory {}",
                      static_cast<double>(*resident) / (1 << 20), formatSize(limit))));
    }
  }
  for (const Event& event : over) handle(event);
  memory_poll_->enable(kMemoryCheckInterval);
}

}  // namespace corral
