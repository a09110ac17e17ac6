#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace corral {

/// What the standard `process_*` metrics say of corral itself (the set every Prometheus client
/// library exports, read from /proc as prometheus_client's ProcessCollector does).
struct ProcessStats {
  double start_time_seconds = 0;  ///< since the Unix epoch
  double cpu_seconds = 0;         ///< user and system
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;
};

/// corral's own figures, or nullopt where /proc cannot be read.
std::optional<ProcessStats> readProcessStats();

/// The figures in /proc/PID/stat's text (after the command name: fields 14, 15, 22, 23, 24 of
/// proc(5)), given the boot time, clock ticks and page size; nullopt for text that is not one.
std::optional<ProcessStats> parseProcStat(std::string_view stat, double boot_time_seconds,
                                          long ticks_per_second, long page_size);

}  // namespace corral
