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

/// The CPU request the kubelet wrote into this container's cgroup, in CPUs: cpu.shares / 1024
/// (v1), or the CPUs that cpu.weight (v2) stands for. Only the container's own cgroup counts: a
/// weight is a share among siblings, not a limit on descendants.
CgroupLimit<double> cgroupCpuRequest(const std::filesystem::path& root);

/// The CPUs a cgroup v2 cpu.weight stands for. Runtimes convert the kubelet's cpu.shares by one
/// of two formulas (KEP-2254's linear one; runc >= 1.3.2 and crun >= 1.23 a quadratic one in
/// log2(shares)), and the weight does not say which: the smaller of the two requests is taken,
/// each at the top of the range of shares that yield this weight.
double cpusForWeight(std::uint64_t weight);

/// The memory limit in bytes, from memory.max (v2) or memory.limit_in_bytes (v1).
CgroupLimit<std::uint64_t> cgroupMemoryLimit(const std::filesystem::path& root);

/// The file in which the kernel counts the OOM kills of this process's memory cgroup, which
/// the workers share: memory.events (v2) or memory.oom_control (v1, Linux 4.13 and later),
/// each with a line "oom_kill N". Under `root`; nullopt when there is no memory cgroup.
std::optional<std::filesystem::path> cgroupOomKillFile(const std::filesystem::path& root);

/// The N of the "oom_kill N" line in such a file.
std::optional<std::uint64_t> parseOomKills(std::string_view text);

}  // namespace corral
