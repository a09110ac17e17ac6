#include "config/host/resources.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "config/config_error.hpp"
#include "config/host/cgroup.hpp"
#include "config/size.hpp"
#include "util/files.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

namespace fs = std::filesystem;

bool isRealRoot(const fs::path& root) {
  return root.lexically_normal() == "/";
}

// ---------------------------------------------------------------------------------------------
// CPUs online and in the affinity mask

// "0-3,8,10-11", the format of /sys/devices/system/cpu/online and Cpus_allowed_list.
std::optional<int> countCpuList(std::string_view text) {
  int count = 0;
  for (const auto range : split(trim(text), ',')) {
    const auto dash = range.find('-');
    const auto first = parseInt<int>(range.substr(0, dash));
    const auto last =
        dash == std::string_view::npos ? first : parseInt<int>(range.substr(dash + 1));
    if (!first || !last || *last < *first) return std::nullopt;
    count += *last - *first + 1;
  }
  return count;
}

int onlineCpus(const fs::path& root) {
  if (isRealRoot(root)) return static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  const auto text = readFile(under(root, "/sys/devices/system/cpu/online"));
  const auto count = text ? countCpuList(*text) : std::nullopt;
  return std::max(1, count.value_or(1));
}

// The mask is sized by doubling because a host may have more CPUs than cpu_set_t holds.
std::optional<int> realAffinity() {
  for (std::size_t words_count = 16; words_count <= 16384; words_count *= 2) {
    std::vector<unsigned long> mask(words_count);
    if (sched_getaffinity(0, mask.size() * sizeof(unsigned long),
                          reinterpret_cast<cpu_set_t*>(mask.data())) == 0) {
      int count = 0;
      for (const auto word : mask) count += std::popcount(word);
      return count;
    }
    if (errno != EINVAL) return std::nullopt;
  }
  return std::nullopt;
}

std::optional<int> fixtureAffinity(const fs::path& root) {
  const auto status = readFile(under(root, "/proc/self/status"));
  if (!status) return std::nullopt;
  constexpr std::string_view kKey = "Cpus_allowed_list:";
  for (const auto line : split(*status, '\n')) {
    if (line.starts_with(kKey)) return countCpuList(line.substr(kKey.size()));
  }
  return std::nullopt;
}

int affinityCpus(const fs::path& root, int online) {
  const auto count = isRealRoot(root) ? realAffinity() : fixtureAffinity(root);
  return count && *count > 0 ? *count : online;
}

// ---------------------------------------------------------------------------------------------
// The worker count

// Rounding rule: floor, at least 1 (automaxprocs' rule). A uvicorn worker is one event loop on
// one thread, so a worker per whole CPU never asks for more CPU time than the quota grants,
// whereas rounding 1.5 up to 2 lets two busy workers use up the quota early in each CFS period
// and stalls every request they hold until the next one.
int wholeCpus(double cpus) {
  if (!std::isfinite(cpus) || cpus < 1.0) return 1;
  if (cpus >= kMaxWorkers) return kMaxWorkers;
  return static_cast<int>(std::floor(cpus));
}

std::string formatCpus(double cpus) {
  std::array<char, 32> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), cpus,
                                    std::chars_format::fixed, 2);
  std::string text(buffer.data(), result.ptr);
  while (text.ends_with('0') && text[text.size() - 2] != '.') text.pop_back();
  return text;
}

std::string cpuReason(const CpuLimit& cpu, int usable) {
  if (!cpu.quota_cpus) {
    return "affinity " + plural(usable, "CPU") + " of " + std::to_string(cpu.online_cpus) +
           " online; no CPU quota (" + cpu.source + ")";
  }
  return cpu.source + " (" + formatCpus(*cpu.quota_cpus) +
         " CPUs, rounded down, at least 1) and affinity " + plural(usable, "CPU");
}

// Appends the memory clause to `reason` and lowers `workers` when the memory cannot hold them.
void applyMemoryBudget(const MemoryLimit& memory, std::optional<std::uint64_t> budget, int& workers,
                       std::string& reason) {
  if (!budget || *budget == 0) return;
  if (!memory.bytes) {
    reason +=
        "; budget " + formatSize(*budget) + " not applied: no memory limit (" + memory.source + ")";
    return;
  }
  const auto fit = std::clamp<std::uint64_t>(*memory.bytes / *budget, 1, kMaxWorkers);
  const auto allowed = static_cast<int>(fit);
  const std::string clause =
      memory.source + " / budget " + formatSize(*budget) + " = " + plural(allowed, "worker");
  if (allowed < workers) {
    workers = allowed;
    reason += "; capped by " + clause;
  } else {
    reason += "; " + clause + " allowed";
  }
}

}  // namespace

CpuLimit detectCpuLimit(const std::filesystem::path& root) {
  CpuLimit limit;
  limit.online_cpus = onlineCpus(root);
  limit.affinity_cpus = affinityCpus(root, limit.online_cpus);
  auto quota = cgroupCpuQuota(root);
  limit.quota_cpus = quota.value;
  limit.source = std::move(quota.source);
  auto request = cgroupCpuRequest(root);
  limit.request_cpus = request.value;
  limit.request_source = std::move(request.source);
  return limit;
}

MemoryLimit detectMemoryLimit(const std::filesystem::path& root) {
  auto limit = cgroupMemoryLimit(root);
  return {limit.value, std::move(limit.source)};
}

WorkerCount autoWorkers(const CpuLimit& cpu, const MemoryLimit& memory,
                        std::optional<std::uint64_t> per_worker_budget, bool in_kubernetes) {
  const int usable = std::clamp(cpu.affinity_cpus, 1, kMaxWorkers);
  int workers = usable;
  std::string reason = cpuReason(cpu, usable);
  // Without a CPU limit (the common advice for pods) the node's CPUs say nothing about the
  // pod: a 64-CPU node would give 64 workers to a pod that asked for 200m. The request does.
  const bool by_request = !cpu.quota_cpus && in_kubernetes && cpu.request_cpus;
  if (cpu.quota_cpus) {
    workers = std::min(wholeCpus(*cpu.quota_cpus), usable);
  } else if (by_request) {
    workers = std::min(wholeCpus(*cpu.request_cpus), usable);
    reason = "the pod's CPU request, " + cpu.request_source + " (" + formatCpus(*cpu.request_cpus) +
             " CPUs, rounded down, at least 1; no CPU limit)";
  }
  applyMemoryBudget(memory, per_worker_budget, workers, reason);
  return {workers, "auto: " + plural(workers, "worker") + " from " + reason,
          !cpu.quota_cpus && !by_request};
}

}  // namespace corral
