#pragma once

#include <iterator>
#include <map>

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

  /// The workers, in pid order: `for (Worker& worker : pool)`.
  template <typename MapIterator, typename Value>
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Worker;
    using difference_type = std::ptrdiff_t;
    using pointer = Value*;
    using reference = Value&;
    Iterator() = default;
    explicit Iterator(MapIterator it) : it_(it) {}
    Value& operator*() const { return it_->second; }
    Value* operator->() const { return &it_->second; }
    Iterator& operator++() {
      ++it_;
      return *this;
    }
    Iterator operator++(int) { return Iterator(it_++); }
    bool operator==(const Iterator& other) const { return it_ == other.it_; }

   private:
    MapIterator it_;
  };
  using iterator = Iterator<std::map<Pid, Worker>::iterator, Worker>;
  using const_iterator = Iterator<std::map<Pid, Worker>::const_iterator, const Worker>;
  iterator begin() { return iterator(workers_.begin()); }
  iterator end() { return iterator(workers_.end()); }
  const_iterator begin() const { return const_iterator(workers_.begin()); }
  const_iterator end() const { return const_iterator(workers_.end()); }

 private:
  std::map<Pid, Worker> workers_;
};

}  // namespace corral
