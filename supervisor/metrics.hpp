#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace corral {

/// Counters kept by the supervisor; admin/prometheus.cpp renders them. Single-threaded: plain
/// integers, no atomics.
struct Metrics {
  std::uint64_t worker_spawns = 0;
  std::uint64_t worker_forks = 0;  ///< of worker_spawns, those forked from the worker template
  std::uint64_t spawn_failures = 0;
  std::map<std::string, std::uint64_t> worker_exits;  ///< by reason: crash, hung, drained, ...
  std::uint64_t orphans_reaped = 0;
  std::uint64_t reload_failures = 0;
};

}  // namespace corral
