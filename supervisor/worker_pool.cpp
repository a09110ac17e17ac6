#include "supervisor/worker_pool.hpp"

#include <algorithm>
#include <utility>

namespace corral {

Worker& WorkerPool::add(Pid pid, int slot, int generation, TimePoint now) {
  Worker& worker = workers_[pid];
  worker.slot = slot;
  worker.pid = pid;
  worker.generation = generation;
  worker.spawned_at = now;
  return worker;
}

Worker* WorkerPool::find(Pid pid) {
  const auto it = workers_.find(pid);
  return it == workers_.end() ? nullptr : &it->second;
}

Worker WorkerPool::remove(Pid pid) {
  const auto it = workers_.find(pid);
  Worker worker = std::move(it->second);
  workers_.erase(it);
  return worker;
}

const Worker* WorkerPool::successorOf(Pid pid) const {
  const auto it = std::find_if(begin(), end(), [pid](const Worker& w) {
    return w.succession && w.succession->replaces == pid;
  });
  return it == end() ? nullptr : &*it;
}

int WorkerPool::readyCount() const {
  return static_cast<int>(
      std::count_if(begin(), end(), [](const Worker& w) { return w.state == WorkerState::Ready; }));
}

int WorkerPool::bootingSuccessors() const {
  return static_cast<int>(std::count_if(begin(), end(), [](const Worker& w) {
    return w.state == WorkerState::Starting && w.succession;
  }));
}

bool WorkerPool::slotServed(int slot) const {
  return std::any_of(begin(), end(), [slot](const Worker& w) {
    return w.slot == slot && w.state != WorkerState::Stopping;
  });
}

}  // namespace corral
