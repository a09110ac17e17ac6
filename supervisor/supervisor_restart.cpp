// --reload: a change to the app's files replaces every worker at once. Unlike a SIGHUP roll,
// nothing overlaps: the old workers stop taking connections as the new ones start, so the
// first request after a save waits in the listen queue for the new code rather than being
// answered by the old. In-flight requests still finish (each old worker drains as a retired
// one does). The worker template is kept unless what it imported changed, so that a new worker
// is a fork away.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

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

// Every worker of an older generation is told to stop, a booting one included, and each slot
// gets a worker of the new one.
void Supervisor::swap(int generation) {
  if (generation != generation_) return;  // stale: a newer change came meanwhile
  prepared_generation_ = generation;
  for (Worker& worker : pool_) {
    if (worker.state == WorkerState::Stopping || worker.generation == generation_) continue;
    if (worker.succession) {
      supersede(worker);
    } else {
      retireWorker(worker, worker.state == WorkerState::Starting ? StopCause::Superseded
                                                                 : StopCause::Reload);
    }
  }
  fillSlots();
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
