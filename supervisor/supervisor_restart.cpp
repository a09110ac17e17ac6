// --reload: a change to the app's files replaces every worker at once. Unlike a SIGHUP roll,
// nothing overlaps: the old workers stop taking connections as the new ones start, so the
// first request after a save waits in the listen queue for the new code rather than being
// answered by the old. In-flight requests still finish (each old worker drains as a retired
// one does). The worker template is kept unless what it imported changed, so that a new worker
// is a fork away.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "supervisor/supervisor.hpp"
#include "util/text.hpp"

namespace corral {

void Supervisor::restart(const Event& event) {
  ++generation_;
  if (event.fresh_template) template_generation_ = generation_;
  reload_error_.clear();
  // A roll's replacements still booting run code older than what is on disk now.
  for (Worker& worker : pool_) {
    if (worker.state == WorkerState::Starting && worker.succession) supersede(worker);
  }
  transitionTo(State::Restarting,
               fmt::format("{}: restarting on generation {}{}", event.why, generation_,
                           event.fresh_template ? " with a new worker template" : ""));
  prepareGeneration();
}

// Each slot gets a worker of the new generation, and every worker of an older one, a booting
// one included, is told to stop. The new ones are forked first, while the old ones are still
// idle rather than shutting down beside the fork.
void Supervisor::swap(int generation) {
  if (generation != generation_) return;  // stale: a newer change came meanwhile
  prepared_generation_ = generation;
  std::vector<Pid> outdated;
  std::vector<bool> current(static_cast<std::size_t>(target_), false);
  for (const Worker& worker : pool_) {
    if (worker.state == WorkerState::Stopping) continue;
    if (worker.generation != generation_) {
      outdated.push_back(worker.pid);
    } else if (worker.slot < target_) {
      current[static_cast<std::size_t>(worker.slot)] = true;
    }
  }
  for (int slot = 0; slot < target_; ++slot) {
    if (!current[static_cast<std::size_t>(slot)]) spawnWorker(slot);
  }
  for (const Pid pid : outdated) {
    Worker* worker = pool_.find(pid);
    if (worker == nullptr) continue;
    if (worker->succession) {
      supersede(*worker);
    } else {
      retireWorker(*worker, worker->state == WorkerState::Starting ? StopCause::Superseded
                                                                   : StopCause::Reload);
    }
  }
  finishRestart();
}

void Supervisor::finishRestart() {
  if (prepared_generation_ != generation_ || pool_.readyCount() < target_) return;
  transitionTo(State::Running,
               reload_error_.empty()
                   ? fmt::format("generation {} serves", generation_)
                   : fmt::format("generation {} failed to load; its workers answer 503 until "
                                 "the next change",
                                 generation_));
}

// Printed once per generation, however many workers report it: they all fail the same way.
void Supervisor::reportLoadError(const Worker& worker) {
  if (load_error_shown_ == worker.generation) return;
  load_error_shown_ = worker.generation;
  if (worker.generation == generation_) reload_error_ = worker.load_error;
  ++metrics_.reload_failures;
  spdlog::error(
      "the app failed to load (generation {}); requests get a 503 with this error until the "
      "next change:\n"
      "==== the app's error ====\n{}\n==== end of the app's error ====",
      worker.generation, worker.load_error);
}

}  // namespace corral
