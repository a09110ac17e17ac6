#pragma once

#include <map>
#include <ranges>

#include "supervisor/worker.hpp"

namespace corral {

/// The workers that exist, by pid, and what can be asked of them as a group. Bookkeeping only:
/// the Supervisor decides, and signals through the spawner.
class WorkerPool {
 public:
  /// A new worker in `slot`, Starting.
  Worker& add(Pid pid, int slot, int generation, TimePoint now);
  Worker* find(Pid pid);
  /// Takes the worker out of the pool; it must be there.
  Worker remove(Pid pid);

  /// The booting worker that will take over from `pid` once READY, if there is one.
  const Worker* successorOf(Pid pid) const;
  /// Workers that are READY and not told to stop.
  int readyCount() const;
  /// Replacements still booting.
  int bootingSuccessors() const;
  /// A slot is served by its one live worker (briefly two, during a replacement); false once
  /// every worker of the slot is stopping.
  bool slotServed(int slot) const;

  bool empty() const { return workers_.empty(); }
  int size() const { return static_cast<int>(workers_.size()); }
  auto all() { return std::views::values(workers_); }
  auto all() const { return std::views::values(workers_); }

 private:
  std::map<Pid, Worker> workers_;
};

}  // namespace corral
