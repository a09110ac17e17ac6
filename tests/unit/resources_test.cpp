#include "config/host/resources.hpp"

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "config/host/cgroup.hpp"
#include "config/size.hpp"
#include "process/oom_watch.hpp"

namespace fs = std::filesystem;

using corral::autoWorkers;
using corral::ConfigError;
using corral::CpuLimit;
using corral::detectCpuLimit;
using corral::detectMemoryLimit;
using corral::formatSize;
using corral::MemoryLimit;

namespace {

constexpr std::uint64_t kMi = std::uint64_t{1} << 20;
constexpr std::uint64_t kGi = 1024 * kMi;

/// A fake filesystem root holding proc/ and sys/ files, removed when the test ends.
class FixtureRoot {
 public:
  FixtureRoot() {
    static int counter = 0;
    const auto base = fs::temp_directory_path();
    do {
      path_ =
          base / ("corral-resources-" + std::to_string(getpid()) + "-" + std::to_string(++counter));
    } while (!fs::create_directory(path_));
  }
  ~FixtureRoot() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  FixtureRoot(const FixtureRoot&) = delete;
  FixtureRoot& operator=(const FixtureRoot&) = delete;
  FixtureRoot(FixtureRoot&&) = delete;
  FixtureRoot& operator=(FixtureRoot&&) = delete;

  const fs::path& path() const { return path_; }

  /// Writes `text` at an absolute path as seen from inside the root.
  void write(const fs::path& absolute, const std::string& text) const {
    const auto file = path_ / absolute.relative_path();
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }

  /// A host with `online` CPUs, all of them in the affinity mask unless `allowed` says otherwise.
  void cpus(const std::string& online, const std::string& allowed) const {
    write("/sys/devices/system/cpu/online", online + "\n");
    write("/proc/self/status",
          "Name:\tcorral\nCpus_allowed:\tff\nCpus_allowed_list:\t" + allowed + "\n");
  }

 private:
  fs::path path_;
};

// Fills each '@' of a fixture file's text with `value`, so the text reads as the kernel's does.
std::string fill(std::string text, const std::string& value) {
  for (auto at = text.find('@'); at != std::string::npos; at = text.find('@', at + value.size())) {
    text.replace(at, 1, value);
  }
  return text;
}

// A pure cgroup v2 container: one hierarchy, mounted at /sys/fs/cgroup from `mount_root`.
void cgroupV2(const FixtureRoot& root, const std::string& cgroup,
              const std::string& mount_root = "/") {
  root.cpus("0-3", "0-3");
  root.write("/proc/self/cgroup", "0::" + cgroup + "\n");
  root.write("/proc/self/mountinfo",
             fill("22 1 0:21 / / rw,relatime - overlay overlay rw\n"
                  "30 22 0:26 @ /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 "
                  "cgroup2 rw,nsdelegate,memory_recursiveprot\n",
                  mount_root));
}

// A hybrid host like the one these tests were written on: v1 controllers under
// /sys/fs/cgroup, cpu and cpuacct on separate hierarchies, and an empty cgroup2 at unified.
void cgroupV1Hybrid(const FixtureRoot& root, const std::string& cgroup) {
  root.cpus("0-1", "0-1");
  root.write("/proc/self/cgroup", fill("9:name=systemd:/\n"
                                       "4:memory:@\n"
                                       "3:cpuset:/\n"
                                       "2:cpuacct:/\n"
                                       "1:cpu:@\n"
                                       "0::/\n",
                                       cgroup));
  root.write("/proc/self/mountinfo",
             "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
             "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
             "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
             "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
             "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
             "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
             "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
  root.write("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
  root.write("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
  root.write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
}

CpuLimit cpuLimit(std::optional<double> quota, int affinity, int online = 8,
                  std::optional<double> request = std::nullopt) {
  return {quota,   affinity,
          online,  quota ? "cgroup v2 cpu.max (test)" : "no quota (test)",
          request, request ? "cgroup v2 cpu.weight (test)" : "no CPU weight (test)"};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// cgroup v2

TEST_CASE("v2: cpu.max 'max' everywhere means no quota, so the affinity mask decides",
          "[unit][resources]") {
  const FixtureRoot root;
  cgroupV2(root, "/app");
  root.write("/sys/fs/cgroup/app/cpu.max", "max 100000\n");
  root.write("/sys/fs/cgroup/app/memory.max", "max\n");

  const auto cpu = detectCpuLimit(root.path());
  CHECK_FALSE(cpu.quota_cpus);
  CHECK(cpu.affinity_cpus == 4);
  CHECK(cpu.online_cpus == 4);
  CHECK(cpu.source == "cgroup v2 cpu.max sets no limit at /sys/fs/cgroup/app or above");
  const auto memory = detectMemoryLimit(root.path());
  CHECK_FALSE(memory.bytes);

  const auto count = autoWorkers(cpu, memory, std::nullopt);
  CHECK(count.workers == 4);
  CHECK(count.explanation ==
        "auto: 4 workers from affinity 4 CPUs of 4 online; no CPU quota (" + cpu.source + ")");
}

TEST_CASE("v2: cpu.max with two fields is quota/period", "[unit][resources]") {
  const FixtureRoot root;
  cgroupV2(root, "/app");
  root.write("/sys/fs/cgroup/app/cpu.max", "200000 100000\n");

  const auto cpu = detectCpuLimit(root.path());
  REQUIRE(cpu.quota_cpus);
  CHECK(*cpu.quota_cpus == Approx(2.0));
  CHECK(cpu.source == "cgroup v2 cpu.max 200000/100000 at /sys/fs/cgroup/app");

  const auto count = autoWorkers(cpu, detectMemoryLimit(root.path()), std::nullopt);
  CHECK(count.workers == 2);
  CHECK(count.explanation ==
        "auto: 2 workers from cgroup v2 cpu.max 200000/100000 at /sys/fs/cgroup/app "
        "(2.0 CPUs, rounded down, at least 1) and affinity 4 CPUs");
}

TEST_CASE("v2: cpu.max with one field uses the default period of 100000", "[unit][resources]") {
  const FixtureRoot root;
  cgroupV2(root, "/app");
  root.write("/sys/fs/cgroup/app/cpu.max", "150000\n");

  const auto cpu = detectCpuLimit(root.path());
  REQUIRE(cpu.quota_cpus);
  CHECK(*cpu.quota_cpus == Approx(1.5));
  CHECK(cpu.source == "cgroup v2 cpu.max 150000/100000 at /sys/fs/cgroup/app");
}

TEST_CASE("v2: the smallest limit up the hierarchy wins, up to the mount point",
          "[unit][resources]") {
  const FixtureRoot root;
  cgroupV2(root, "/kubepods/pod1/ctr");
  root.write("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "300000 100000\n");
  root.write("/sys/fs/cgroup/kubepods/pod1/cpu.max", "100000 100000\n");
  root.write("/sys/fs/cgroup/kubepods/cpu.max", "max 100000\n");
  root.write("/sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "max\n");
  root.write("/sys/fs/cgroup/kubepods/pod1/memory.max", "1073741824\n");
  root.write("/sys/fs/cgroup/kubepods/memory.max", "2147483648\n");
  // Above the mount point nothing is visible to a container; a file there must be ignored.
  root.write("/sys/fs/memory.max", "1\n");

  const auto cpu = detectCpuLimit(root.path());
  REQUIRE(cpu.quota_cpus);
  CHECK(*cpu.quota_cpus == Approx(1.0));
  CHECK(cpu.source == "cgroup v2 cpu.max 100000/100000 at /sys/fs/cgroup/kubepods/pod1");

  const auto memory = detectMemoryLimit(root.path());
  REQUIRE(memory.bytes);
  CHECK(*memory.bytes == kGi);
  CHECK(memory.source == "cgroup v2 memory.max 1Gi at /sys/fs/cgroup/kubepods/pod1");
}

TEST_CASE("v2: a period of 0 or a garbled cpu.max is ignored with a note", "[unit][resources]") {
  const auto text = GENERATE(as<std::string>{}, "100000 0", "0 100000", "abc", "", "1 2 3",
                             "-5 100000", "150000 100000x");
  CAPTURE(text);
  const FixtureRoot root;
  cgroupV2(root, "/app");
  root.write("/sys/fs/cgroup/app/cpu.max", text + "\n");

  SECTION("alone, it leaves no quota") {
    const auto cpu = detectCpuLimit(root.path());
    CHECK_FALSE(cpu.quota_cpus);
    CHECK_THAT(cpu.source, Catch::Contains("ignored cpu.max '" + text + "' at /sys/fs/cgroup/app"));
    CHECK(autoWorkers(cpu, {}, std::nullopt).workers == 4);
  }
  SECTION("a valid limit above it still counts") {
    root.write("/sys/fs/cgroup/cpu.max", "250000 100000\n");
    const auto cpu = detectCpuLimit(root.path());
    REQUIRE(cpu.quota_cpus);
    CHECK(*cpu.quota_cpus == Approx(2.5));
    CHECK_THAT(cpu.source, Catch::StartsWith("cgroup v2 cpu.max 250000/100000 at /sys/fs/cgroup;"));
    CHECK_THAT(cpu.source, Catch::Contains("ignored cpu.max"));
  }
}

TEST_CASE("v2 in a cgroup namespace: a mount root of /.. reads the mount point itself",
          "[unit][resources]") {
  const FixtureRoot root;
  cgroupV2(root, "/", "/..");
  root.write("/sys/fs/cgroup/cpu.max", "50000 100000\n");
  root.write("/sys/fs/cgroup/memory.max", "536870912\n");

  const auto cpu = detectCpuLimit(root.path());
  REQUIRE(cpu.quota_cpus);
  CHECK(*cpu.quota_cpus == Approx(0.5));
  CHECK_THAT(cpu.source, Catch::StartsWith("cgroup v2 cpu.max 50000/100000 at /sys/fs/cgroup;"));
  CHECK_THAT(cpu.source, Catch::Contains("not below mount root /.. (cgroup namespace)"));
  const auto memory = detectMemoryLimit(root.path());
  REQUIRE(memory.bytes);
  CHECK(*memory.bytes == 512 * kMi);
}

TEST_CASE("v2 with a private cgroup namespace: path / at mount root / is the mount point",
          "[unit][resources]") {
  const FixtureRoot root;
  cgroupV2(root, "/");
  root.write("/sys/fs/cgroup/cpu.max", "100000 100000\n");

  const auto cpu = detectCpuLimit(root.path());
  CHECK(cpu.quota_cpus == 1.0);
  CHECK(cpu.source == "cgroup v2 cpu.max 100000/100000 at /sys/fs/cgroup");
}

TEST_CASE("v2: a mount root that prefixes the cgroup path is stripped from it",
          "[unit][resources]") {
  const FixtureRoot root;
  cgroupV2(root, "/kubepods/pod1/ctr", "/kubepods/pod1");
  root.write("/sys/fs/cgroup/ctr/cpu.max", "120000 100000\n");

  const auto cpu = detectCpuLimit(root.path());
  REQUIRE(cpu.quota_cpus);
  CHECK(*cpu.quota_cpus == Approx(1.2));
  CHECK(cpu.source == "cgroup v2 cpu.max 120000/100000 at /sys/fs/cgroup/ctr");
}

TEST_CASE("mountinfo's octal escapes in the mount point are decoded", "[unit][resources]") {
  const FixtureRoot root;
  root.cpus("0-3", "0-3");
  root.write("/proc/self/cgroup", "0::/app\n");
  root.write("/proc/self/mountinfo",
             "30 22 0:26 / /sys/fs/my\\040cgroup rw shared:4 master:1 - cgroup2 cgroup2 rw\n");
  root.write("/sys/fs/my cgroup/app/cpu.max", "300000 100000\n");

  const auto cpu = detectCpuLimit(root.path());
  CHECK(cpu.quota_cpus == 3.0);
}

TEST_CASE("no cgroup files at all: no limits, and the affinity mask decides", "[unit][resources]") {
  const FixtureRoot root;
  root.cpus("0-7", "0-5");

  const auto cpu = detectCpuLimit(root.path());
  CHECK_FALSE(cpu.quota_cpus);
  CHECK(cpu.source == "no cgroup hierarchy with cpu.max is mounted");
  const auto memory = detectMemoryLimit(root.path());
  CHECK_FALSE(memory.bytes);
  CHECK(autoWorkers(cpu, memory, 256 * kMi).workers == 6);
}

// ---------------------------------------------------------------------------------------------
// cgroup v1 and the hybrid layout

TEST_CASE("hybrid: the v1 cpu controller decides, not the cgroup2 mount at unified",
          "[unit][resources]") {
  const FixtureRoot root;
  cgroupV1Hybrid(root, "/corral-test");
  // A decoy: cpu.max under the unified mount must not be read while v1 holds the controller.
  root.write("/sys/fs/cgroup/unified/cpu.max", "400000 100000\n");
  root.write("/sys/fs/cgroup/unified/memory.max", "1048576\n");
  // cpuacct and cpuset are different controllers whose names start with "cpu".
  root.write("/sys/fs/cgroup/cpuacct/cpu.cfs_quota_us", "10000\n");
  root.write("/sys/fs/cgroup/cpuacct/cpu.cfs_period_us", "100000\n");
  root.write("/sys/fs/cgroup/cpu/corral-test/cpu.cfs_quota_us", "50000\n");
  root.write("/sys/fs/cgroup/cpu/corral-test/cpu.cfs_period_us", "100000\n");

  const auto cpu = detectCpuLimit(root.path());
  REQUIRE(cpu.quota_cpus);
  CHECK(*cpu.quota_cpus == Approx(0.5));
  CHECK(cpu.source ==
        "cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us 50000/100000 at "
        "/sys/fs/cgroup/cpu/corral-test");
  CHECK(cpu.affinity_cpus == 2);
  CHECK_FALSE(detectMemoryLimit(root.path()).bytes);

  // The behaviour the real-cgroup check expects: 0.5 CPUs -> 1 worker while nproc says 2.
  const auto count = autoWorkers(cpu, detectMemoryLimit(root.path()), std::nullopt);
  CHECK(count.workers == 1);
  CHECK_THAT(count.explanation, Catch::StartsWith("auto: 1 worker from cgroup v1"));
  CHECK_THAT(count.explanation, Catch::Contains("(0.5 CPUs, rounded down, at least 1)"));
}

TEST_CASE("v1: a combined cpu,cpuacct hierarchy is found by either name", "[unit][resources]") {
  const FixtureRoot root;
  root.cpus("0-3", "0-3");
  root.write("/proc/self/cgroup", "3:cpu,cpuacct:/docker/abc\n2:memory:/docker/abc\n");
  root.write("/proc/self/mountinfo",
             "36 25 0:31 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid shared:9 - cgroup "
             "cgroup rw,cpu,cpuacct\n");
  root.write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "250000\n");
  root.write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");

  const auto cpu = detectCpuLimit(root.path());
  REQUIRE(cpu.quota_cpus);
  CHECK(*cpu.quota_cpus == Approx(2.5));
  CHECK(cpu.source ==
        "cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us 250000/100000 at "
        "/sys/fs/cgroup/cpu,cpuacct");
}

TEST_CASE("v1: a quota of -1 means no limit; a positive one is quota/period", "[unit][resources]") {
  const FixtureRoot root;
  cgroupV1Hybrid(root, "/a/b");
  root.write("/sys/fs/cgroup/cpu/a/b/cpu.cfs_quota_us", "-1\n");
  root.write("/sys/fs/cgroup/cpu/a/b/cpu.cfs_period_us", "100000\n");

  SECTION("-1 everywhere") {
    const auto cpu = detectCpuLimit(root.path());
    CHECK_FALSE(cpu.quota_cpus);
    CHECK(cpu.source ==
          "cgroup v1 cpu.cfs_quota_us sets no limit at /sys/fs/cgroup/cpu/a/b or above");
    CHECK(autoWorkers(cpu, {}, std::nullopt).workers == 2);
  }
  SECTION("a positive quota on a parent") {
    root.write("/sys/fs/cgroup/cpu/a/cpu.cfs_quota_us", "150000\n");
    root.write("/sys/fs/cgroup/cpu/a/cpu.cfs_period_us", "50000\n");
    const auto cpu = detectCpuLimit(root.path());
    REQUIRE(cpu.quota_cpus);
    CHECK(*cpu.quota_cpus == Approx(3.0));
    CHECK(autoWorkers(cpu, {}, std::nullopt).workers == 2);  // affinity caps it
  }
  SECTION("a missing or zero period is ignored with a note") {
    root.write("/sys/fs/cgroup/cpu/a/b/cpu.cfs_quota_us", "50000\n");
    root.write("/sys/fs/cgroup/cpu/a/b/cpu.cfs_period_us", "0\n");
    const auto cpu = detectCpuLimit(root.path());
    CHECK_FALSE(cpu.quota_cpus);
    CHECK_THAT(cpu.source, Catch::Contains("ignored cpu.cfs_quota_us '50000' / cpu.cfs_period_us "
                                           "'0' at /sys/fs/cgroup/cpu/a/b"));
  }
}

TEST_CASE("v1: memory.limit_in_bytes at or above 2^62 means unlimited", "[unit][resources]") {
  const auto unlimited = GENERATE(as<std::string>{}, "9223372036854771712", "9223372036854775807",
                                  "4611686018427387904");
  CAPTURE(unlimited);
  const FixtureRoot root;
  cgroupV1Hybrid(root, "/process_api/abc");
  root.write("/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes", unlimited + "\n");
  root.write("/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", unlimited + "\n");

  const auto memory = detectMemoryLimit(root.path());
  CHECK_FALSE(memory.bytes);
  CHECK(memory.source ==
        "cgroup v1 memory.limit_in_bytes sets no limit at /sys/fs/cgroup/memory/process_api/abc "
        "or above");

  SECTION("while a real limit further up still counts") {
    root.write("/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", "536870912\n");
    const auto limited = detectMemoryLimit(root.path());
    REQUIRE(limited.bytes);
    CHECK(*limited.bytes == 512 * kMi);
    CHECK(limited.source ==
          "cgroup v1 memory.limit_in_bytes 512Mi at /sys/fs/cgroup/memory/process_api");
  }
}

// ---------------------------------------------------------------------------------------------
// The worker count

TEST_CASE("rounding: one worker per whole CPU of the quota, at least one", "[unit][resources]") {
  const auto [quota, workers] = GENERATE(table<double, int>({
      {0.01, 1},
      {0.5, 1},
      {0.99, 1},
      {1.0, 1},
      {1.5, 1},
      {1.99, 1},
      {2.0, 2},
      {2.5, 2},
      {3.999, 3},
      {16.0, 16},
  }));
  CAPTURE(quota);
  const auto count = autoWorkers(cpuLimit(quota, 64), {}, std::nullopt);
  CHECK(count.workers == workers);
  CHECK_THAT(count.explanation, Catch::Contains("rounded down, at least 1"));
}

TEST_CASE("the quota is intersected with the affinity mask", "[unit][resources]") {
  const auto [quota, affinity, workers] = GENERATE(table<std::optional<double>, int, int>({
      {4.0, 2, 2},
      {1.0, 4, 1},
      {2.0, 2, 2},
      {std::nullopt, 3, 3},
      {1e12, 8, 8},
      {std::nullopt, 0, 1},  // a broken affinity count still yields a worker
  }));
  CAPTURE(quota, affinity);
  CHECK(autoWorkers(cpuLimit(quota, affinity), {}, std::nullopt).workers == workers);
}

TEST_CASE("the affinity and online counts come from the fixture's cpu lists", "[unit][resources]") {
  const FixtureRoot root;
  root.cpus("0-7", "0,2,4-5");
  const auto cpu = detectCpuLimit(root.path());
  CHECK(cpu.online_cpus == 8);
  CHECK(cpu.affinity_cpus == 4);
  CHECK(autoWorkers(cpu, {}, std::nullopt).workers == 4);
}

TEST_CASE("a memory budget caps the count at limit / budget, at least one", "[unit][resources]") {
  const MemoryLimit memory{kGi, "cgroup v2 memory.max 1Gi at /sys/fs/cgroup/app"};
  const auto [budget, workers] = GENERATE(table<std::uint64_t, int>({
      {256 * kMi, 4},
      {300 * kMi, 3},
      {512 * kMi, 2},
      {2 * kGi, 1},
      {64 * kMi, 8},  // memory would allow 16; the CPUs allow 8
  }));
  CAPTURE(budget);
  const auto count = autoWorkers(cpuLimit(std::nullopt, 8), memory, budget);
  CHECK(count.workers == workers);
  CHECK_THAT(count.explanation, Catch::Contains(memory.source + " / budget " + formatSize(budget)));
}

TEST_CASE("the memory cap is explained", "[unit][resources]") {
  const MemoryLimit memory{kGi, "cgroup v2 memory.max 1Gi at /sys/fs/cgroup/app"};
  const CpuLimit cpu{2.0, 4, 4, "cgroup v2 cpu.max 200000/100000 at /sys/fs/cgroup/app", {}, {}};

  CHECK(autoWorkers(cpu, memory, 768 * kMi).explanation ==
        "auto: 1 worker from cgroup v2 cpu.max 200000/100000 at /sys/fs/cgroup/app (2.0 CPUs, "
        "rounded down, at least 1) and affinity 4 CPUs; capped by cgroup v2 memory.max 1Gi at "
        "/sys/fs/cgroup/app / budget 768Mi = 1 worker");
  CHECK_THAT(autoWorkers(cpu, memory, 256 * kMi).explanation,
             Catch::EndsWith("; cgroup v2 memory.max 1Gi at /sys/fs/cgroup/app / budget 256Mi = "
                             "4 workers allowed"));
  CHECK(autoWorkers(cpu, memory, std::nullopt).explanation.find("memory") == std::string::npos);
}

TEST_CASE("a budget without a memory limit changes nothing and says so", "[unit][resources]") {
  const MemoryLimit none{std::nullopt, "cgroup v2 memory.max sets no limit at /sys/fs/cgroup"};
  const auto count = autoWorkers(cpuLimit(std::nullopt, 4), none, 256 * kMi);
  CHECK(count.workers == 4);
  CHECK_THAT(count.explanation,
             Catch::EndsWith("; budget 256Mi not applied: no memory limit (" + none.source + ")"));
}

TEST_CASE("a memory limit without a budget changes nothing", "[unit][resources]") {
  const MemoryLimit memory{100 * kMi, "test"};
  CHECK(autoWorkers(cpuLimit(std::nullopt, 4), memory, std::nullopt).workers == 4);
}

TEST_CASE("detection on this machine gives a sane count", "[unit][resources]") {
  const auto cpu = detectCpuLimit();
  const auto memory = detectMemoryLimit();
  CHECK(cpu.online_cpus >= 1);
  CHECK(cpu.affinity_cpus >= 1);
  CHECK_FALSE(cpu.source.empty());
  CHECK_FALSE(memory.source.empty());
  const auto count = autoWorkers(cpu, memory, 100 * kMi);
  INFO(count.explanation);
  CHECK(count.workers >= 1);
  CHECK(count.workers <= cpu.affinity_cpus);
  CHECK_THAT(count.explanation, Catch::StartsWith("auto: "));
  CHECK(count.explanation.find('\n') == std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// OOM kills

TEST_CASE("OOM kills are counted in the memory cgroup's events file", "[unit][resources][oom]") {
  CHECK(corral::parseOomKills("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n") == 2u);
  CHECK(corral::parseOomKills("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n") == 7u);
  CHECK_FALSE(corral::parseOomKills("oom_kill_disable 0\nunder_oom 0\n"));  // before Linux 4.13
  CHECK_FALSE(corral::parseOomKills("oom_kill lots\n"));

  const FixtureRoot v2;
  cgroupV2(v2, "/app");
  CHECK(corral::cgroupOomKillFile(v2.path()) == v2.path() / "sys/fs/cgroup/app/memory.events");
  const FixtureRoot v1;
  cgroupV1Hybrid(v1, "/docker/c1");
  CHECK(corral::cgroupOomKillFile(v1.path()) ==
        v1.path() / "sys/fs/cgroup/memory/docker/c1/memory.oom_control");
}

TEST_CASE("OomWatch explains one SIGKILL per kill counted since it started",
          "[unit][resources][oom]") {
  const FixtureRoot root;
  cgroupV2(root, "/app");
  root.write("/sys/fs/cgroup/app/memory.max", "536870912\n");
  const auto events = [&](int kills) {
    root.write("/sys/fs/cgroup/app/memory.events", "oom 1\noom_kill " + std::to_string(kills));
  };
  events(4);  // kills before corral started are nobody's business now
  corral::OomWatch watch(root.path());
  CHECK_FALSE(watch.claim());
  events(6);  // two workers killed at once
  CHECK(watch.claim() == "cgroup memory limit 512Mi");
  CHECK(watch.claim() == "cgroup memory limit 512Mi");
  CHECK_FALSE(watch.claim());  // a third SIGKILL: a crash, or corral's own
}

// ---------------------------------------------------------------------------------------------
// The CPU request, in a Kubernetes pod without a CPU limit

// The weights runtimes write for a request of `millicores`: cpu.shares = m * 1024 / 1000, then
// KEP-2254's linear formula or the quadratic one of runc >= 1.3.2 and crun >= 1.23.
std::uint64_t linearWeight(std::uint64_t millicores) {
  const std::uint64_t shares = std::max<std::uint64_t>(2, millicores * 1024 / 1000);
  return 1 + ((shares - 2) * 9999) / 262142;
}

std::uint64_t quadraticWeight(std::uint64_t millicores) {
  const double shares = std::max<double>(2, static_cast<double>(millicores * 1024 / 1000));
  const double l = std::log2(shares);
  return static_cast<std::uint64_t>(
      std::ceil(std::pow(10.0, (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0)));
}

TEST_CASE("cpu.weight: the smaller request of the two conversions, never below the truth",
          "[unit][resources]") {
  // The quadratic formula is the current one; a weight from it must give back the request.
  for (std::uint64_t m = 100; m <= 64'000; m += 100) {
    CAPTURE(m, quadraticWeight(m));
    const double cpus = corral::cpusForWeight(quadraticWeight(m));
    CHECK(cpus >= static_cast<double>(m) / 1000.0 * 0.99);
    CHECK(std::floor(cpus + 1e-6) ==
          std::floor(static_cast<double>(m * 1024 / 1000) / 1024.0 + 1e-6));
  }
  // Known points: the default weight 100 is 1 CPU; 200m is weight 29 (quadratic) or 8
  // (linear); whichever wrote it, it stays under one CPU.
  CHECK(quadraticWeight(1000) == 100);
  CHECK(linearWeight(200) == 8);
  CHECK(quadraticWeight(200) == 29);
  CHECK(corral::cpusForWeight(100) == Approx(1.0).epsilon(0.01));
  CHECK(corral::cpusForWeight(8) < 1.0);
  CHECK(corral::cpusForWeight(29) < 1.0);
  // A linear weight reads as fewer CPUs than asked (the safe side), never more.
  for (std::uint64_t m = 100; m <= 64'000; m += 100) {
    CAPTURE(m);
    CHECK(corral::cpusForWeight(linearWeight(m)) <= static_cast<double>(m) / 1000.0 * 1.03);
  }
  CHECK(corral::cpusForWeight(0) > 0.0);
  CHECK(corral::cpusForWeight(1'000'000) < 300.0);
}

TEST_CASE("in a pod without a limit the request decides; elsewhere it means nothing",
          "[unit][resources]") {
  const auto [quota, request, in_kubernetes, workers, host] =
      GENERATE(table<std::optional<double>, std::optional<double>, bool, int, bool>({
          {std::nullopt, 0.2, true, 1, false},   // 200m: one worker
          {std::nullopt, 2.02, true, 2, false},  // 2 CPUs
          {std::nullopt, 50.0, true, 8, false},  // never more than the affinity mask
          {std::nullopt, 0.2, false, 8, true},   // not in a pod: the host's CPUs
          {std::nullopt, std::nullopt, true, 8, true},
          {3.0, 0.2, true, 3, false},  // a limit wins over the request
      }));
  CAPTURE(quota, request, in_kubernetes);
  const auto count = autoWorkers(cpuLimit(quota, 8, 64, request), {}, std::nullopt, in_kubernetes);
  CHECK(count.workers == workers);
  CHECK(count.from_host_cpus == host);
  if (!quota && request && in_kubernetes) {
    CHECK_THAT(count.explanation, Catch::StartsWith("auto: " + std::to_string(workers)));
    CHECK_THAT(count.explanation, Catch::Contains("the pod's CPU request, cgroup v2 cpu.weight"));
  }
}

TEST_CASE("v2 and v1: the request is read from the container's own cgroup", "[unit][resources]") {
  const FixtureRoot root;
  cgroupV2(root, "/");  // a container's cgroup namespace: its own cgroup is the root it sees
  root.write("/sys/fs/cgroup/cpu.max", "max 100000\n");
  root.write("/sys/fs/cgroup/cpu.weight", "29\n");
  auto cpu = detectCpuLimit(root.path());
  REQUIRE(cpu.request_cpus);
  CHECK(*cpu.request_cpus < 1.0);
  CHECK(cpu.request_source == "cgroup v2 cpu.weight 29 at /sys/fs/cgroup");
  CHECK(autoWorkers(cpu, {}, std::nullopt, true).workers == 1);

  root.write("/sys/fs/cgroup/cpu.weight", "heavy\n");
  cpu = detectCpuLimit(root.path());
  CHECK_FALSE(cpu.request_cpus);
  CHECK_THAT(cpu.request_source, Catch::Contains("ignored cpu.weight 'heavy'"));

  const FixtureRoot v1;
  cgroupV1Hybrid(v1, "/kubepods/pod1/ctr");
  v1.write("/sys/fs/cgroup/cpu/kubepods/pod1/ctr/cpu.shares", "2048\n");
  cpu = detectCpuLimit(v1.path());
  REQUIRE(cpu.request_cpus);
  CHECK(*cpu.request_cpus == Approx(2.0));
  CHECK(autoWorkers(cpu, {}, std::nullopt, true).workers == 2);
}
