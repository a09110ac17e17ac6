#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace corral {

/// Every reason a worker's exit is counted under (`corral_worker_exits_total{reason}`), so that
/// each series exists, at 0, from the start. supervisor_workers.cpp's exitReason picks one.
inline constexpr std::array<std::string_view, 14> kExitReasons{
    "crash",           "exited",   "boot_failure",
    "cannot_run",      "oom",      "hung",
    "startup_timeout", "drained",  "killed_at_drain_deadline",
    "reloaded",        "recycled", "scaled_down",
    "superseded",      "stopped"};

/// A Prometheus histogram: observations counted in buckets of upper bounds (seconds).
struct Histogram {
  explicit Histogram(std::vector<double> upper_bounds)
      : bounds(std::move(upper_bounds)), counts(bounds.size(), 0) {}
  void observe(double value) {
    for (std::size_t i = 0; i < bounds.size(); ++i) {
      if (value <= bounds[i]) ++counts[i];  // cumulative, as the exposition format has them
    }
    sum += value;
    ++count;
  }

  std::vector<double> bounds;
  std::vector<std::uint64_t> counts;  ///< observations <= each bound
  double sum = 0;
  std::uint64_t count = 0;
};

/// Counters kept by the supervisor; admin/prometheus.cpp renders them. Single-threaded: plain
/// integers, no atomics.
struct Metrics {
  Metrics() {
    for (const std::string_view reason : kExitReasons) worker_exits[std::string(reason)] = 0;
  }

  std::uint64_t worker_spawns = 0;
  std::uint64_t worker_forks = 0;  ///< of worker_spawns, those forked from the worker template
  std::uint64_t spawn_failures = 0;
  std::map<std::string, std::uint64_t> worker_exits;  ///< by reason (kExitReasons)
  std::uint64_t orphans_reaped = 0;
  std::uint64_t reloads = 0;  ///< rolls started (SIGHUP)
  /// Requests served by the workers of each slot that have exited (as they last reported), so
  /// that a slot's count only grows however often its worker is replaced.
  std::map<int, std::uint64_t> retired_requests;
  std::uint64_t reload_failures = 0;
  /// Spawn to READY, for workers that became ready.
  Histogram worker_startup{{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  /// A worker corral stopped gracefully (drain, reload, recycling, scaling down): from SIGTERM
  /// to its exit.
  Histogram drain_duration{{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}};
};

}  // namespace corral
