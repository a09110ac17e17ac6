#pragma once

#include <cerrno>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "supervisor/process_spawner.hpp"

namespace corral::testing {

/// Records spawn requests and signals; hands out pids 100, 101, ... Exits and messages are fed to
/// the supervisor by the test, as the real spawner would.
class FakeSpawner final : public ProcessSpawner {
 public:
  struct Signal {
    Pid pid;
    int signo;
    bool whole_group;
    bool operator==(const Signal&) const = default;
  };

  void attach(ChildEvents& events) override { events_ = &events; }

  void prepare(int generation, std::function<void()> ready) override {
    prepared.push_back(generation);
    if (defer_prepare) {
      pending_prepare.push_back(std::move(ready));
    } else {
      ready();
    }
  }

  /// Calls the `ready` of every deferred prepare(), in order.
  void finishPrepare() {
    auto pending = std::move(pending_prepare);
    pending_prepare.clear();
    for (auto& ready : pending) ready();
  }

  SpawnResult spawn(const WorkerRequest& request) override {
    spawned.push_back(request);
    if (failing_spawns > 0) {
      --failing_spawns;
      return SpawnResult::failed(ENOENT);
    }
    pids.push_back(next_pid_++);
    return SpawnResult::started(pids.back());
  }

  void signal(Pid pid, int signo, bool whole_group) override {
    signals.push_back({pid, signo, whole_group});
  }

  std::optional<std::uint64_t> residentBytes(Pid pid) const override {
    const auto it = resident.find(pid);
    if (it == resident.end()) return std::nullopt;
    return it->second;
  }

  void message(Pid pid, std::string_view text) { events_->onChildMessage(pid, text); }
  void exit(Pid pid, const ExitStatus& status) { events_->onChildExit(pid, status); }

  std::vector<int> prepared;   ///< the generation of each prepare()
  bool defer_prepare = false;  ///< hold prepare()'s `ready` until finishPrepare()
  std::vector<std::function<void()>> pending_prepare;
  std::vector<WorkerRequest> spawned;
  std::vector<Pid> pids;  ///< pid of each successful spawn, in order
  std::vector<Signal> signals;
  int failing_spawns = 0;                 ///< how many of the next spawns fail with ENOENT
  std::map<Pid, std::uint64_t> resident;  ///< what residentBytes reports

 private:
  ChildEvents* events_ = nullptr;
  Pid next_pid_ = 100;
};

}  // namespace corral::testing
