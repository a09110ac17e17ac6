#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fakes/fake_clock.hpp"
#include "fakes/fake_spawner.hpp"
#include "supervisor/supervisor.hpp"

namespace corral::testing {

/// A Supervisor wired to a FakeClock and a FakeSpawner, with its hooks recorded.
struct Harness {
  Config config = [] {
    Config c;
    c.app = "app:app";
    c.workers = 2;
    c.python = "/usr/bin/python3";
    return c;
  }();
  FakeClock clock;
  FakeSpawner spawner;
  std::optional<int> stopped_with;
  std::vector<std::string> notified;
  bool gated = false;
  std::size_t queued = 0;  ///< what the listen queues hold
  int next_random = 0;
  std::unique_ptr<Supervisor> supervisor;

  Supervisor& start() {
    Supervisor::Hooks hooks{
        .on_stopped = [this](int code) { stopped_with = code; },
        .notify = [this](std::string_view m) { notified.emplace_back(m); },
        .gate_listeners = [this] { gated = true; },
        .queued_connections = [this] { return queued; },
        .random = [this](int n) { return std::min(n, next_random); },
    };
    supervisor = std::make_unique<Supervisor>(config, clock, spawner,
                                              WorkerCommand(config, {3}, {}), std::move(hooks));
    supervisor->start();
    return *supervisor;
  }
  void ready(Pid pid) { spawner.message(pid, "READY=1"); }
  void readyAll() {
    for (const Pid pid : spawner.pids) ready(pid);
  }
  Supervisor& running() {
    start();
    readyAll();
    return *supervisor;
  }
  std::size_t spawns() const { return spawner.pids.size(); }
};

}  // namespace corral::testing
