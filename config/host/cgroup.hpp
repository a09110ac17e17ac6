#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

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

}  // namespace corral
