#include "config/resources.hpp"

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

#include "config/cgroup.hpp"
#include "config/config_error.hpp"
#include "config/kernel_files.hpp"

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

// Same ceiling as an explicit --workers.
constexpr int kMaxAutoWorkers = 1024;

// Rounding rule: floor, at least 1 (automaxprocs' rule). A uvicorn worker is one event loop on
// one thread, so a worker per whole CPU never asks for more CPU time than the quota grants,
// whereas rounding 1.5 up to 2 lets two busy workers use up the quota early in each CFS period
// and stalls every request they hold until the next one.
int wholeCpus(double cpus) {
  if (!std::isfinite(cpus) || cpus < 1.0) return 1;
  if (cpus >= kMaxAutoWorkers) return kMaxAutoWorkers;
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

std::string plural(int count, std::string_view noun) {
  return std::to_string(count) + " " + std::string(noun) + (count == 1 ? "" : "s");
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
  const auto fit = std::clamp<std::uint64_t>(*memory.bytes / *budget, 1, kMaxAutoWorkers);
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

// ---------------------------------------------------------------------------------------------
// Sizes

struct SizeUnit {
  std::string_view suffix;
  std::uint64_t bytes;
};

constexpr std::uint64_t kOne = 1;
constexpr auto kBinaryUnits = std::to_array<SizeUnit>({{"Ei", kOne << 60},
                                                       {"Pi", kOne << 50},
                                                       {"Ti", kOne << 40},
                                                       {"Gi", kOne << 30},
                                                       {"Mi", kOne << 20},
                                                       {"Ki", kOne << 10}});
constexpr auto kDecimalUnits = std::to_array<SizeUnit>({{"E", 1'000'000'000'000'000'000},
                                                        {"P", 1'000'000'000'000'000},
                                                        {"T", 1'000'000'000'000},
                                                        {"G", 1'000'000'000},
                                                        {"M", 1'000'000},
                                                        {"k", 1'000}});

constexpr std::string_view kExpectedSize =
    "expected a size such as 512Mi, 1Gi, 300M or 1048576 (bytes)";
constexpr std::string_view kUnits =
    "use k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024)";

std::optional<std::uint64_t> unitBytes(std::string_view suffix) {
  if (suffix.empty()) return 1;
  for (const auto& units : {kBinaryUnits, kDecimalUnits}) {
    for (const auto& unit : units) {
      if (unit.suffix == suffix) return unit.bytes;
    }
  }
  return std::nullopt;
}

[[noreturn]] void failSize(std::string_view what, std::string_view text, std::string_view reason) {
  failInput(what, text, reason);
}

}  // namespace

CpuLimit detectCpuLimit(const std::filesystem::path& root) {
  CpuLimit limit;
  limit.online_cpus = onlineCpus(root);
  limit.affinity_cpus = affinityCpus(root, limit.online_cpus);
  auto quota = cgroupCpuQuota(root);
  limit.quota_cpus = quota.value;
  limit.source = std::move(quota.source);
  return limit;
}

MemoryLimit detectMemoryLimit(const std::filesystem::path& root) {
  auto limit = cgroupMemoryLimit(root);
  return {limit.value, std::move(limit.source)};
}

WorkerCount autoWorkers(const CpuLimit& cpu, const MemoryLimit& memory,
                        std::optional<std::uint64_t> per_worker_budget) {
  const int usable = std::clamp(cpu.affinity_cpus, 1, kMaxAutoWorkers);
  int workers = cpu.quota_cpus ? std::min(wholeCpus(*cpu.quota_cpus), usable) : usable;
  std::string reason = cpuReason(cpu, usable);
  applyMemoryBudget(memory, per_worker_budget, workers, reason);
  return {workers, "auto: " + plural(workers, "worker") + " from " + reason};
}

std::uint64_t parseSize(std::string_view text, std::string_view what) {
  if (!text.empty() && text.front() == '-') failSize(what, text, "must not be negative");
  const auto digits = static_cast<std::size_t>(
      std::find_if(text.begin(), text.end(), [](char c) { return c < '0' || c > '9'; }) -
      text.begin());
  if (digits == 0) failSize(what, text, kExpectedSize);
  const auto suffix = text.substr(digits);
  if (suffix.starts_with('.')) {
    failSize(what, text, "use a whole number with a smaller unit, e.g. 1536Mi rather than 1.5Gi");
  }
  const auto unit = unitBytes(suffix);
  if (!unit) {
    failSize(what, text, "unknown unit '" + std::string(suffix) + "'; " + std::string(kUnits));
  }
  const auto number = parseInt<std::uint64_t>(text.substr(0, digits));
  if (!number || *number > std::numeric_limits<std::uint64_t>::max() / *unit) {
    failSize(what, text, "too large");
  }
  if (*number == 0) failSize(what, text, "must be greater than zero");
  return *number * *unit;
}

std::string formatSize(std::uint64_t bytes) {
  for (const auto& units : {kBinaryUnits, kDecimalUnits}) {
    for (const auto& unit : units) {
      if (bytes >= unit.bytes && bytes % unit.bytes == 0) {
        return std::to_string(bytes / unit.bytes) + std::string(unit.suffix);
      }
    }
  }
  return std::to_string(bytes);
}

}  // namespace corral
