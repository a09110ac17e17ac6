#include "config/resources.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace corral {
namespace {

namespace fs = std::filesystem;

using Notes = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// Text helpers. Every file here is written by the kernel (or a fixture imitating it), but a
// container runtime can mount anything at these paths, so nothing is trusted to parse.

std::optional<std::string> readFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && isSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && isSpace(text.back())) text.remove_suffix(1);
  return text;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t pos = 0; pos <= text.size(); ++pos) {
    if (pos == text.size() || text[pos] == separator) {
      parts.push_back(text.substr(start, pos - start));
      start = pos + 1;
    }
  }
  return parts;
}

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  for (const auto part : split(trim(text), ' ')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

template <typename Int>
std::optional<Int> parseInt(std::string_view text) {
  Int value{};
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

// "cpu" must not match "cpuacct" or "cpuset", so lists are compared item by item.
bool listHas(std::string_view comma_list, std::string_view item) {
  const auto items = split(comma_list, ',');
  return std::find(items.begin(), items.end(), item) != items.end();
}

std::string join(const Notes& notes, std::string_view separator) {
  std::string out;
  for (const auto& note : notes) {
    if (!out.empty()) out += separator;
    out += note;
  }
  return out;
}

// A fixture root must not be discarded by operator/ when joined with an absolute path.
fs::path under(const fs::path& root, const fs::path& absolute) {
  return root / absolute.relative_path();
}

bool isRealRoot(const fs::path& root) {
  return root.lexically_normal() == "/";
}

// ---------------------------------------------------------------------------------------------
// Finding this process's cgroup directory for one controller.

struct Mount {
  std::string root;  ///< the mounted cgroup, relative to its hierarchy: "/", "/..", "/docker/x"
  fs::path point;
  std::string type;     ///< "cgroup" (v1) or "cgroup2"
  std::string options;  ///< super options; a v1 mount lists its controllers there
};

bool isOctal(char c) {
  return c >= '0' && c <= '7';
}

// mountinfo writes space, tab, newline and backslash in paths as "\ooo", so a mount point
// with a space would otherwise split the line's fields.
std::string unescapeOctal(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto code = text.substr(i + 1, 3);
    if (text[i] == '\\' && code.size() == 3 && std::all_of(code.begin(), code.end(), isOctal)) {
      out += static_cast<char>((code[0] - '0') * 64 + (code[1] - '0') * 8 + (code[2] - '0'));
      i += 3;
    } else {
      out += text[i];
    }
  }
  return out;
}

// "36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct": the
// optional fields before "-" vary in number, so fields after it are found from the separator.
std::optional<Mount> parseMountLine(std::string_view line) {
  const auto fields = words(line);
  const auto dash = std::find(fields.begin(), fields.end(), "-");
  if (fields.size() < 6 || dash == fields.end() || fields.end() - dash < 4) return std::nullopt;
  const auto type = *(dash + 1);
  if (type != "cgroup" && type != "cgroup2") return std::nullopt;
  return Mount{unescapeOctal(fields[3]), unescapeOctal(fields[4]), std::string(type),
               std::string(*(dash + 3))};
}

std::vector<Mount> cgroupMounts(const fs::path& root) {
  std::vector<Mount> mounts;
  const auto text = readFile(under(root, "/proc/self/mountinfo"));
  if (!text) return mounts;
  for (const auto line : split(*text, '\n')) {
    if (auto mount = parseMountLine(line)) mounts.push_back(std::move(*mount));
  }
  return mounts;
}

// One line of /proc/self/cgroup: "4:memory:/docker/abc", or "0::/app" for the v2 hierarchy.
struct Membership {
  std::string id;
  std::string controllers;
  std::string path;
};

std::vector<Membership> memberships(const fs::path& root) {
  std::vector<Membership> out;
  const auto text = readFile(under(root, "/proc/self/cgroup"));
  if (!text) return out;
  for (const auto line : split(*text, '\n')) {
    const auto first = line.find(':');
    const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    out.push_back({std::string(line.substr(0, first)),
                   std::string(line.substr(first + 1, second - first - 1)),
                   std::string(line.substr(second + 1))});
  }
  return out;
}

/// This process's cgroup for one controller: `leaf` is its directory and `top` the mount point,
/// where walking up stops because nothing above it is visible.
struct Hierarchy {
  int version = 2;
  fs::path leaf;
  fs::path top;
};

// The mount shows the hierarchy from `mount.root` down, so the cgroup path loses that prefix.
// Inside a cgroup namespace whose mount came from outside it, the root reads "/.." (our cgroup
// is below the mount but its name is invisible): the mount point is the closest we can get.
fs::path placeUnder(const Mount& mount, std::string_view path, Notes& notes) {
  std::string_view rest;
  if (mount.root == "/") {
    rest = path;
  } else if (path.starts_with(mount.root) &&
             (path.size() == mount.root.size() || path[mount.root.size()] == '/')) {
    rest = path.substr(mount.root.size());
  } else {
    notes.push_back("cgroup " + std::string(path) + " is not below mount root " + mount.root +
                    " (cgroup namespace), so limits are read at " + mount.point.string());
    return mount.point;
  }
  while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  return rest.empty() ? mount.point : mount.point / rest;
}

// A controller bound to a v1 hierarchy cannot also be in the v2 one, so a v1 mount with the
// controller decides; that is also what makes a hybrid host (cgroup2 at
// /sys/fs/cgroup/unified, controllers in v1) read its limits from v1.
std::optional<Hierarchy> findHierarchy(const fs::path& root, std::string_view controller,
                                       Notes& notes) {
  const auto mounts = cgroupMounts(root);
  const auto groups = memberships(root);
  for (const auto& group : groups) {
    if (group.id == "0" || !listHas(group.controllers, controller)) continue;
    for (const auto& mount : mounts) {
      if (mount.type == "cgroup" && listHas(mount.options, controller)) {
        return Hierarchy{1, placeUnder(mount, group.path, notes), mount.point};
      }
    }
  }
  for (const auto& group : groups) {
    if (group.id != "0") continue;
    for (const auto& mount : mounts) {
      if (mount.type == "cgroup2") {
        return Hierarchy{2, placeUnder(mount, group.path, notes), mount.point};
      }
    }
  }
  return std::nullopt;
}

// A parent's limit binds its children in both versions, so every level up to the mount counts.
std::vector<fs::path> levelsUp(const Hierarchy& hierarchy) {
  std::vector<fs::path> levels;
  for (fs::path dir = hierarchy.leaf;; dir = dir.parent_path()) {
    levels.push_back(dir);
    if (dir == hierarchy.top || dir == dir.parent_path()) break;
  }
  return levels;
}

/// A limit read at one level: its value and how to show where it came from.
template <typename Value>
struct Found {
  Value value;
  std::string what;
};

template <typename Value, typename ReadLevel>
std::optional<Found<Value>> smallestUp(const Hierarchy& hierarchy, ReadLevel read_level) {
  std::optional<Found<Value>> best;
  for (const auto& dir : levelsUp(hierarchy)) {
    auto found = read_level(dir);
    if (found && (!best || found->value < best->value)) best = std::move(found);
  }
  return best;
}

std::string describeSource(const std::optional<Hierarchy>& hierarchy, std::string_view file,
                           const std::optional<std::string>& found, const Notes& notes) {
  std::string text;
  if (!hierarchy) {
    text = "no cgroup hierarchy with " + std::string(file) + " is mounted";
  } else if (found) {
    text = *found;
  } else {
    text = "cgroup v" + std::to_string(hierarchy->version) + " " + std::string(file) +
           " sets no limit at " + hierarchy->leaf.string();
    if (hierarchy->leaf != hierarchy->top) text += " or above";
  }
  if (!notes.empty()) text += "; " + join(notes, "; ");
  return text;
}

// ---------------------------------------------------------------------------------------------
// CPU

constexpr std::uint64_t kDefaultPeriodUs = 100'000;  // what cpu.max implies for one field

std::optional<Found<double>> cpuQuota(std::uint64_t quota, std::uint64_t period,
                                      std::string_view files, const fs::path& dir) {
  return Found<double>{static_cast<double>(quota) / static_cast<double>(period),
                       std::string(files) + " " + std::to_string(quota) + "/" +
                           std::to_string(period) + " at " + dir.string()};
}

// cpu.max is "max 100000" (no limit), "150000 100000" (1.5 CPUs) or "150000".
std::optional<Found<double>> readCpuMax(const fs::path& root, const fs::path& dir, Notes& notes) {
  const auto text = readFile(under(root, dir / "cpu.max"));
  if (!text) return std::nullopt;
  const auto fields = words(*text);
  if (!fields.empty() && fields[0] == "max") return std::nullopt;
  const auto quota = fields.empty() ? std::nullopt : parseInt<std::uint64_t>(fields[0]);
  std::optional<std::uint64_t> period;
  if (fields.size() == 1) period = kDefaultPeriodUs;
  if (fields.size() == 2) period = parseInt<std::uint64_t>(fields[1]);
  if (!quota || !period || *quota == 0 || *period == 0) {
    notes.push_back("ignored cpu.max '" + std::string(trim(*text)) + "' at " + dir.string() +
                    ": not 'max', 'QUOTA' or 'QUOTA PERIOD' with both above zero");
    return std::nullopt;
  }
  return cpuQuota(*quota, *period, "cgroup v2 cpu.max", dir);
}

// v1 splits the same pair over two files; a quota of -1 means no limit.
std::optional<Found<double>> readCfsQuota(const fs::path& root, const fs::path& dir, Notes& notes) {
  const auto quota_text = readFile(under(root, dir / "cpu.cfs_quota_us"));
  if (!quota_text || trim(*quota_text) == "-1") return std::nullopt;
  const auto period_text = readFile(under(root, dir / "cpu.cfs_period_us"));
  const auto quota = parseInt<std::uint64_t>(trim(*quota_text));
  const auto period =
      period_text ? parseInt<std::uint64_t>(trim(*period_text)) : std::optional<std::uint64_t>{};
  if (!quota || !period || *quota == 0 || *period == 0) {
    notes.push_back(
        "ignored cpu.cfs_quota_us '" + std::string(trim(*quota_text)) + "' / cpu.cfs_period_us '" +
        std::string(period_text ? trim(*period_text) : "(missing)") + "' at " + dir.string());
    return std::nullopt;
  }
  return cpuQuota(*quota, *period, "cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us", dir);
}

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
// Memory

// v1 has no "max": an unlimited cgroup shows LONG_MAX rounded down to a page
// (9223372036854771712 here), and other page sizes round differently, so anything this large
// is taken as unlimited.
constexpr std::uint64_t kV1Unlimited = std::uint64_t{1} << 62;

// memory.max is "max" or bytes; memory.limit_in_bytes is always bytes.
std::optional<Found<std::uint64_t>> readMemoryLimit(const fs::path& root, int version,
                                                    const fs::path& dir, Notes& notes) {
  const std::string file = version == 2 ? "memory.max" : "memory.limit_in_bytes";
  const auto text = readFile(under(root, dir / file));
  if (!text || (version == 2 && trim(*text) == "max")) return std::nullopt;
  const auto bytes = parseInt<std::uint64_t>(trim(*text));
  if (!bytes) {
    notes.push_back("ignored " + file + " '" + std::string(trim(*text)) + "' at " + dir.string());
    return std::nullopt;
  }
  if (version == 1 && *bytes >= kV1Unlimited) return std::nullopt;
  return Found<std::uint64_t>{*bytes, "cgroup v" + std::to_string(version) + " " + file + " " +
                                          formatSize(*bytes) + " at " + dir.string()};
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
  Notes notes;
  const auto hierarchy = findHierarchy(root, "cpu", notes);
  std::optional<Found<double>> best;
  if (hierarchy) {
    best = smallestUp<double>(*hierarchy, [&](const fs::path& dir) {
      return hierarchy->version == 2 ? readCpuMax(root, dir, notes)
                                     : readCfsQuota(root, dir, notes);
    });
  }
  if (best) limit.quota_cpus = best->value;
  const auto file = !hierarchy || hierarchy->version == 2 ? "cpu.max" : "cpu.cfs_quota_us";
  limit.source =
      describeSource(hierarchy, file, best ? std::optional{best->what} : std::nullopt, notes);
  return limit;
}

MemoryLimit detectMemoryLimit(const std::filesystem::path& root) {
  MemoryLimit limit;
  Notes notes;
  const auto hierarchy = findHierarchy(root, "memory", notes);
  std::optional<Found<std::uint64_t>> best;
  if (hierarchy) {
    best = smallestUp<std::uint64_t>(*hierarchy, [&](const fs::path& dir) {
      return readMemoryLimit(root, hierarchy->version, dir, notes);
    });
  }
  if (best) limit.bytes = best->value;
  const auto file = !hierarchy || hierarchy->version == 2 ? "memory.max" : "memory.limit_in_bytes";
  limit.source =
      describeSource(hierarchy, file, best ? std::optional{best->what} : std::nullopt, notes);
  return limit;
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
