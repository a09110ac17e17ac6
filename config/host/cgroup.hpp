#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace corral {

/// A limit from this process's cgroup: the smallest one between its own cgroup and the mount
/// point. Anything unreadable counts as no limit, and `source` says what was read, where, and
/// what was ignored.
template <typename Value>
struct CgroupLimit {
  std::optional<Value> value;  ///< nullopt when unlimited
  std::string source;
};

/// The CPU bandwidth in CPUs, from cpu.max (v2) or cpu.cfs_quota_us/cpu.cfs_period_us (v1).
/// Reads root/proc/self/cgroup, root/proc/self/mountinfo and the cgroup files they point to.
CgroupLimit<double> cgroupCpuQuota(const std::filesystem::path& root);

/// The memory limit in bytes, from memory.max (v2) or memory.limit_in_bytes (v1).
CgroupLimit<std::uint64_t> cgroupMemoryLimit(const std::filesystem::path& root);

/// The file in which the kernel counts the OOM kills of this process's memory cgroup, which
/// the workers share: memory.events (v2) or memory.oom_control (v1, Linux 4.13 and later),
/// each with a line "oom_kill N". Under `root`; nullopt when there is no memory cgroup.
std::optional<std::filesystem::path> cgroupOomKillFile(const std::filesystem::path& root);

/// The N of the "oom_kill N" line in such a file.
std::optional<std::uint64_t> parseOomKills(std::string_view text);

}  // namespace corral
