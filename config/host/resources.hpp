#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace corral {

/// What the kernel lets this process use of the CPU. Detection never fails: anything it cannot
/// read counts as "no limit", and `source` says what was read, where, and what was ignored.
struct CpuLimit {
  std::optional<double> quota_cpus;  ///< cgroup CPU bandwidth in CPUs; nullopt when unlimited
  int affinity_cpus = 1;             ///< CPUs in the affinity mask (cpuset, taskset)
  int online_cpus = 1;               ///< CPUs online on the host
  std::string source;  ///< e.g. "cgroup v2 cpu.max 150000/100000 at /sys/fs/cgroup/app"
  std::optional<double> request_cpus;  ///< the CPU request the cgroup's weight stands for
  std::string request_source;          ///< e.g. "cgroup v2 cpu.weight 8 at /sys/fs/cgroup"
};

/// The cgroup memory limit, the smallest one between this process's cgroup and the mount root.
struct MemoryLimit {
  std::optional<std::uint64_t> bytes;  ///< nullopt when unlimited
  std::string source;
};

/// The outcome of `--workers auto`.
struct WorkerCount {
  int workers = 1;
  std::string explanation;      ///< one line, for the log and the admin endpoints
  bool from_host_cpus = false;  ///< nothing limited or requested: counted the host's CPUs
};

/// Reads root/proc/self/cgroup, root/proc/self/mountinfo and the cgroup files they point to.
/// When root is "/" the affinity and online counts come from sched_getaffinity and sysconf;
/// under any other root (a test fixture) from root/proc/self/status (Cpus_allowed_list) and
/// root/sys/devices/system/cpu/online.
CpuLimit detectCpuLimit(const std::filesystem::path& root = "/");

/// Reads memory.max (v2) or memory.limit_in_bytes (v1) under the same rules as detectCpuLimit.
MemoryLimit detectMemoryLimit(const std::filesystem::path& root = "/");

/// The worker count for `--workers auto`: one worker per whole CPU of the quota (or, in a
/// Kubernetes pod without a CPU limit, of the CPU request), never more than the affinity mask
/// allows and never fewer than one, then capped at memory / per_worker_budget when both are
/// known.
WorkerCount autoWorkers(const CpuLimit& cpu, const MemoryLimit& memory,
                        std::optional<std::uint64_t> per_worker_budget, bool in_kubernetes = false);

}  // namespace corral
