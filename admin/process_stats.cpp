#include "admin/process_stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "util/files.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

// "btime" of /proc/stat: when the machine booted, in seconds since the epoch.
std::optional<double> bootTime() {
  const auto stat = readFile("/proc/stat");
  if (!stat) return std::nullopt;
  for (const auto line : split(*stat, '\n')) {
    const auto parts = words(line);
    if (parts.size() == 2 && parts[0] == "btime") {
      if (const auto value = parseInt<std::uint64_t>(parts[1])) return static_cast<double>(*value);
    }
  }
  return std::nullopt;
}

std::uint64_t countOpenFds() {
  std::error_code error;
  std::uint64_t count = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error)) {
    ++count;
  }
  return count > 0 ? count - 1 : 0;  // less the one the iteration itself holds
}

}  // namespace

std::optional<ProcessStats> parseProcStat(std::string_view stat, double boot_time_seconds,
                                          long ticks_per_second, long page_size) {
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const auto end_of_name = stat.rfind(')');
  if (end_of_name == std::string_view::npos || ticks_per_second <= 0 || page_size <= 0) {
    return std::nullopt;
  }
  const auto fields = words(stat.substr(end_of_name + 1));
  // fields[0] is proc(5)'s field 3 (state); field N is fields[N - 3].
  if (fields.size() < 22) return std::nullopt;
  const auto utime = parseInt<std::uint64_t>(fields[11]);
  const auto stime = parseInt<std::uint64_t>(fields[12]);
  const auto start = parseInt<std::uint64_t>(fields[19]);
  const auto vsize = parseInt<std::uint64_t>(fields[20]);
  const auto rss = parseInt<std::uint64_t>(fields[21]);
  if (!utime || !stime || !start || !vsize || !rss) return std::nullopt;
  const auto ticks = static_cast<double>(ticks_per_second);
  ProcessStats stats;
  stats.cpu_seconds = static_cast<double>(*utime + *stime) / ticks;
  stats.start_time_seconds = boot_time_seconds + static_cast<double>(*start) / ticks;
  stats.virtual_bytes = *vsize;
  stats.resident_bytes = *rss * static_cast<std::uint64_t>(page_size);
  return stats;
}

std::optional<ProcessStats> readProcessStats() {
  const auto stat = readFile("/proc/self/stat");
  const auto boot = bootTime();
  if (!stat || !boot) return std::nullopt;
  auto stats = parseProcStat(*stat, *boot, ::sysconf(_SC_CLK_TCK), ::sysconf(_SC_PAGESIZE));
  if (!stats) return std::nullopt;
  stats->open_fds = countOpenFds();
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) stats->max_fds = limit.rlim_cur;
  return stats;
}

}  // namespace corral
