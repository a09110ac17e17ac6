#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fakes/fake_clock.hpp"
#include "fakes/fake_spawner.hpp"
#include "runtime/sd_notify.hpp"
#include "signals/signal_router.hpp"
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
  std::vector<std::string> notified;  ///< sd_notify datagrams, MONOTONIC_USEC=0
  bool gated = false;
  std::size_t queued = 0;  ///< what the listen queues hold
  int next_random = 0;
  std::unique_ptr<Supervisor> supervisor;

  Supervisor& start() {
    Supervisor::Hooks hooks{
        .on_stopped = [this](int code) { stopped_with = code; },
        .notify =
            [this](const ServiceNotice& notice) {
              notified.push_back(Notifier::encode(notice, 0));
            },
        .gate_listeners = [this] { gated = true; },
        .queued_connections = [this] { return queued; },
        .random = [this](int n) { return std::min(n, next_random); },
    };
    supervisor = std::make_unique<Supervisor>(config, clock, spawner, std::move(hooks));
    supervisor->start();
    return *supervisor;
  }
  void ready(Pid pid) { spawner.message(pid, "READY=1"); }
  /// What corral does on receiving `signo`.
  void signal(int signo) { supervisor->handle(*SignalRouter::eventFor(signo)); }
  void readyAll() {
    for (const Pid pid : spawner.pids) ready(pid);
  }
  Supervisor& running() {
    start();
    readyAll();
    return *supervisor;
  }
  std::size_t spawns() const { return spawner.pids.size(); }
  /// Whether corral has sent this signal to a worker.
  bool signalled(FakeSpawner::Signal signal) const {
    return std::find(spawner.signals.begin(), spawner.signals.end(), signal) !=
           spawner.signals.end();
  }
};

}  // namespace corral::testing
