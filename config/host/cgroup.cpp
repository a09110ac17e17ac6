#include "config/host/cgroup.hpp"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <utility>
#include <vector>

#include "config/size.hpp"
#include "util/files.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

namespace fs = std::filesystem;

using Notes = std::vector<std::string>;

// "cpu" must not match "cpuacct" or "cpuset", so lists are compared item by item.
bool listHas(std::string_view comma_list, std::string_view item) {
  const auto items = split(comma_list, ',');
  return std::find(items.begin(), items.end(), item) != items.end();
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

// ---------------------------------------------------------------------------------------------
// The CPU request

// cpu.shares = millicores * 1024 / 1000 (the kubelet's rule, at least 2).
constexpr double kSharesPerCpu = 1024.0;
// A hair over, so that a weight standing for exactly 2 CPUs is not read as 1.999...
constexpr double kRounding = 1e-6;

std::optional<Found<double>> readCpuRequest(const fs::path& root, int version, const fs::path& dir,
                                            Notes& notes) {
  const std::string file = version == 2 ? "cpu.weight" : "cpu.shares";
  const auto text = readFile(under(root, dir / file));
  if (!text) return std::nullopt;
  const auto value = parseInt<std::uint64_t>(trim(*text));
  if (!value || *value == 0) {
    notes.push_back("ignored " + file + " '" + std::string(trim(*text)) + "' at " + dir.string());
    return std::nullopt;
  }
  const double cpus =
      version == 2 ? cpusForWeight(*value) : static_cast<double>(*value) / kSharesPerCpu;
  return Found<double>{cpus, "cgroup v" + std::to_string(version) + " " + file + " " +
                                 std::to_string(*value) + " at " + dir.string()};
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
// The smallest limit up the hierarchy

/// The files a limit is read from, per cgroup version, for `source` when none is set.
struct LimitFiles {
  std::string_view v2;
  std::string_view v1;
};

// ReadLevel: (int version, const fs::path& dir, Notes&) -> std::optional<Found<Value>>.
template <typename Value, typename ReadLevel>
CgroupLimit<Value> smallestLimit(const fs::path& root, std::string_view controller,
                                 LimitFiles files, ReadLevel read_level) {
  Notes notes;
  const auto hierarchy = findHierarchy(root, controller, notes);
  std::optional<Found<Value>> best;
  if (hierarchy) {
    best = smallestUp<Value>(*hierarchy, [&](const fs::path& dir) {
      return read_level(hierarchy->version, dir, notes);
    });
  }
  CgroupLimit<Value> limit;
  if (best) limit.value = best->value;
  const auto file = !hierarchy || hierarchy->version == 2 ? files.v2 : files.v1;
  limit.source =
      describeSource(hierarchy, file, best ? std::optional{best->what} : std::nullopt, notes);
  return limit;
}

}  // namespace

CgroupLimit<double> cgroupCpuQuota(const fs::path& root) {
  return smallestLimit<double>(root, "cpu", {"cpu.max", "cpu.cfs_quota_us"},
                               [&](int version, const fs::path& dir, Notes& notes) {
                                 return version == 2 ? readCpuMax(root, dir, notes)
                                                     : readCfsQuota(root, dir, notes);
                               });
}

CgroupLimit<double> cgroupCpuRequest(const fs::path& root) {
  Notes notes;
  const auto hierarchy = findHierarchy(root, "cpu", notes);
  std::optional<Found<double>> found;
  if (hierarchy) found = readCpuRequest(root, hierarchy->version, hierarchy->leaf, notes);
  CgroupLimit<double> request;
  if (found) {
    request.value = found->value + kRounding;
    request.source = found->what;
  } else {
    request.source = hierarchy ? "no CPU weight at " + hierarchy->leaf.string()
                               : "no cgroup hierarchy with a CPU weight is mounted";
  }
  if (!notes.empty()) request.source += "; " + join(notes, "; ");
  return request;
}

double cpusForWeight(std::uint64_t weight) {
  const auto w = static_cast<double>(std::clamp<std::uint64_t>(weight, 1, 10'000));
  // Linear: weight = 1 + (shares - 2) * 9999 / 262142, in integers.
  const double linear_shares = 2.0 + std::ceil(w * 262142.0 / 9999.0) - 1.0;
  // Quadratic: weight = ceil(10^((L^2 + 125 L) / 612 - 7/34)) with L = log2(shares).
  const double c = 612.0 * (std::log10(w) + 7.0 / 34.0);
  const double log2_shares = (-125.0 + std::sqrt(125.0 * 125.0 + 4.0 * c)) / 2.0;
  const double quadratic_shares = std::exp2(log2_shares);
  return std::min(linear_shares, quadratic_shares) / kSharesPerCpu;
}

CgroupLimit<std::uint64_t> cgroupMemoryLimit(const fs::path& root) {
  return smallestLimit<std::uint64_t>(root, "memory", {"memory.max", "memory.limit_in_bytes"},
                                      [&](int version, const fs::path& dir, Notes& notes) {
                                        return readMemoryLimit(root, version, dir, notes);
                                      });
}

std::optional<fs::path> cgroupOomKillFile(const fs::path& root) {
  Notes ignored;
  const auto hierarchy = findHierarchy(root, "memory", ignored);
  if (!hierarchy) return std::nullopt;
  const fs::path file = hierarchy->version == 2 ? "memory.events" : "memory.oom_control";
  return under(root, hierarchy->leaf / file);
}

std::optional<std::uint64_t> parseOomKills(std::string_view text) {
  for (const auto line : split(text, '\n')) {
    const auto fields = words(line);
    if (fields.size() == 2 && fields[0] == "oom_kill") return parseInt<std::uint64_t>(fields[1]);
  }
  return std::nullopt;
}

}  // namespace corral
