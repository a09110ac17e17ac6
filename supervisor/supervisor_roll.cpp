// Replacing workers without a gap: rolling reload (SIGHUP), scaling (SIGTTIN/SIGTTOU) and
// recycling (--max-requests, --max-worker-memory). A replacement is always started first; the
// worker it replaces is told to stop only once the new one is READY (nginx's overlapping
// generations, one slot at a time).

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>

#include "config/resources.hpp"
#include "supervisor/supervisor.hpp"
#include "supervisor/supervisor_timing.hpp"

namespace corral {

void Supervisor::reload(std::string_view why) {
  switch (state_) {
    case State::Starting:
    case State::Running:
    case State::Reloading: break;
    case State::Draining:
    case State::Stopped: spdlog::info("{} ignored: corral is stopping", why); return;
  }
  ++generation_;
  reload_error_.clear();
  // Replacements still booting from an earlier roll run older code than what is asked for now.
  for (auto& [pid, worker] : workers_) {
    if (worker.state == WorkerState::Starting && worker.replaces >= 0) supersede(worker);
  }
  transitionTo(State::Reloading, fmt::format("{}: rolling to generation {}", why, generation_));
  prepareGeneration([this] {
    fillSlots();  // a SIGHUP while the first workers were being prepared
    continueRoll();
  });
}

// Starts replacements up to --max-surge at a time, oldest slots first, until every slot is
// served by a READY worker of the current generation.
void Supervisor::continueRoll() {
  if (state_ != State::Reloading || preparing_) return;
  int in_flight =
      static_cast<int>(std::count_if(workers_.begin(), workers_.end(), [](const auto& e) {
        return e.second.state == WorkerState::Starting && e.second.replaces >= 0;
      }));
  bool outdated = false;
  for (int slot = 0; slot < target_; ++slot) {
    for (auto& [pid, worker] : workers_) {
      if (worker.slot != slot || worker.state == WorkerState::Stopping ||
          worker.generation == generation_) {
        continue;
      }
      outdated = true;
      if (worker.state == WorkerState::Starting) {
        retireWorker(worker, StopCause::Superseded);  // not serving yet: respawned anew
      } else if (worker.replacing_for == StopCause::None && in_flight < config_.max_surge) {
        ++in_flight;
        if (!spawnWorker(slot, pid, StopCause::Reload))
          return abortRoll("the new worker could not be started");
      }
      break;
    }
  }
  const bool all_ready = readyCount() >= target_;
  if (!outdated && in_flight == 0 && all_ready) {
    transitionTo(State::Running, fmt::format("reload to generation {} complete", generation_));
  }
}

// The app on disk does not boot: the workers serving now keep serving it as they have it.
void Supervisor::abortRoll(std::string why) {
  reload_error_ = std::move(why);
  ++metrics_.reload_failures;
  spdlog::error("reload to generation {} failed; the old workers keep serving:\n{}", generation_,
                reload_error_);
  for (auto& [pid, worker] : workers_) {
    if (worker.state == WorkerState::Starting && worker.replaces >= 0) supersede(worker);
  }
  transitionTo(State::Running, "reload failed");
}

// Stops a replacement that is still booting; the worker it was to replace is free to be
// replaced again, and the stopped one's exit is nobody's failure.
void Supervisor::supersede(Worker& successor) {
  if (Worker* old = find(successor.replaces)) old->replacing_for = StopCause::None;
  successor.replaces = -1;
  retireWorker(successor, StopCause::Superseded);
}

// Starts a successor for `worker` in its slot; `worker` keeps serving until the successor is
// READY. A worker already being replaced is left alone.
void Supervisor::replaceWorker(Worker& worker, StopCause why, std::string_view what) {
  if (state_ != State::Running && state_ != State::Starting) return;  // a roll or drain decides
  if (worker.state != WorkerState::Ready || worker.replacing_for != StopCause::None) return;
  spdlog::info("worker {} (pid {}) {}: starting its replacement", worker.slot, worker.pid, what);
  spawnWorker(worker.slot, worker.pid, why);
}

void Supervisor::onSuccessorReady(Worker& successor) {
  Worker* old = find(successor.replaces);
  successor.replaces = -1;
  if (old == nullptr || old->state == WorkerState::Stopping) return;  // it went on its own
  const StopCause cause =
      old->replacing_for == StopCause::None ? StopCause::Recycle : old->replacing_for;
  retireWorker(*old, cause);
}

void Supervisor::onSuccessorFailed(const Worker& successor, ExitStatus status) {
  Worker* old = find(successor.replaces);
  if (old != nullptr) old->replacing_for = StopCause::None;
  if (state_ == State::Reloading && successor.generation == generation_) {
    abortRoll(successor.error.empty()
                  ? fmt::format("the new worker ended with {} before it was ready", status.str())
                  : successor.error);
    return;
  }
  if (old == nullptr && slotNeedsWorker(successor.slot)) {
    scheduleRespawn(successor.slot, std::nullopt);
    return;
  }
  if (!successor.error.empty()) {
    spdlog::error("worker {} replacement failed to start:\n{}", successor.slot, successor.error);
  }
  // The old worker keeps serving; recycling asks again at its next limit check.
}

void Supervisor::scaleUp() {
  if (state_ == State::Draining || state_ == State::Stopped) return;
  ++target_;
  slots_.resize(static_cast<std::size_t>(target_));
  spdlog::info("scaling up to {} workers (SIGTTIN)", target_);
  spawnWorker(target_ - 1);
  notifyStatus();
}

void Supervisor::scaleDown() {
  if (state_ == State::Draining || state_ == State::Stopped) return;
  if (target_ == 1) {
    spdlog::info("SIGTTOU ignored: corral keeps at least one worker");
    return;
  }
  --target_;
  spdlog::info("scaling down to {} workers (SIGTTOU)", target_);
  for (auto& [pid, worker] : workers_) {
    if (worker.slot == target_ && worker.state != WorkerState::Stopping) {
      retireWorker(worker, StopCause::ScaleDown);
    }
  }
  slots_.resize(static_cast<std::size_t>(target_));
  if (state_ == State::Starting && readyCount() >= target_) {
    transitionTo(State::Running, "all " + std::to_string(target_) + " workers ready");
  } else if (state_ == State::Reloading) {
    continueRoll();
  } else {
    notifyStatus();
  }
}

// A worker over the limit at two checks in a row is replaced: one high reading may be a
// request's transient peak that the allocator hands back.
void Supervisor::checkMemory() {
  const std::uint64_t limit = *config_.max_worker_memory;
  for (auto& [pid, worker] : workers_) {
    if (worker.state != WorkerState::Ready || worker.replacing_for != StopCause::None) continue;
    const auto resident = spawner_.residentBytes(pid);
    if (!resident || *resident <= limit) {
      worker.memory_strikes = 0;
      continue;
    }
    if (++worker.memory_strikes >= 2) {
      replaceWorker(worker, StopCause::Recycle,
                    fmt::format("uses {:.1f}Mi of memory, above --max-worker-memory {}",
                                static_cast<double>(*resident) / (1 << 20), formatSize(limit)));
    }
  }
  memory_poll_->enable(kMemoryCheckInterval);
}

}  // namespace corral
