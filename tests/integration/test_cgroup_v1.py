"""`--workers auto` against a real cgroup v1 CPU quota.

The CI machine is a cgroup v1 hybrid: the cpu controller lives in a v1 hierarchy and cgroup2 at
/sys/fs/cgroup/unified holds no controllers, so a real v2 cpu.max cannot be exercised here (the
unit tests cover v2 with fixture trees). As root a test can make a v1 cpu cgroup with a quota of
0.5 CPUs and start corral inside it: the kernel then throttles corral and its workers to half a
CPU while nproc and Python's os.cpu_count() still report every host CPU.

Every test skips cleanly when it is not root or no v1 cpu controller is mounted, and the fixture
removes the cgroup it made even when a test fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import CORRAL_BIN

QUOTA_US = 50_000
PERIOD_US = 100_000
TEARDOWN_DEADLINE = 10.0

# `sh` puts itself into the cgroup, then execs the command, so the command and every process it
# starts are confined from their first instruction.
ENTER = 'echo $$ > "$0" && exec "$@"'


def v1_cpu_mount() -> Path | None:
    """The mount point of the v1 hierarchy that holds the cpu controller, if any."""
    return v1_mount("cpu")


def v1_mount(controller: str) -> Path | None:
    """The mount point of the v1 hierarchy that holds `controller`, if any."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 4 or fields[dash + 1] != "cgroup":
            continue
        # The super options name the controllers; "cpuacct" and "cpuset" are not "cpu".
        if controller in fields[dash + 3].split(","):
            return Path(fields[4].replace("\\040", " "))
    return None


class V1Cgroup:
    """A v1 cgroup made for one test and removed after it; `settings` are written in order."""

    def __init__(self, mount: Path, settings: list[tuple[str, int]]):
        self.path = mount / f"corral-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path.mkdir()
        try:
            for name, value in settings:
                (self.path / name).write_text(f"{value}\n")
        except OSError:
            self.remove()
            raise

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def wrap(self, *command: str) -> list[str]:
        """`command`, run from its start inside this cgroup."""
        return ["/bin/sh", "-c", ENTER, str(self.procs), *command]

    def members(self) -> list[int]:
        try:
            return [int(pid) for pid in self.procs.read_text().split()]
        except OSError:
            return []

    def remove(self) -> None:
        """Kills what a failed test left inside (only this test's processes can be in a cgroup
        it just made), then removes the directory; rmdir fails with EBUSY until it is empty."""
        deadline = time.monotonic() + TEARDOWN_DEADLINE
        while True:
            for pid in self.members():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as error:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"could not remove {self.path}: {error}") from error
                time.sleep(0.05)


class CpuCgroup(V1Cgroup):
    """A v1 cpu cgroup with a CFS quota."""

    def __init__(self, mount: Path, quota_us: int, period_us: int):
        # Period first: the kernel checks the quota against the period already in place.
        super().__init__(mount, [("cpu.cfs_period_us", period_us),
                                 ("cpu.cfs_quota_us", quota_us)])


@pytest.fixture
def half_cpu_cgroup():
    """A cgroup limited to 0.5 CPUs (50000/100000), or a skip saying why there cannot be one."""
    if os.geteuid() != 0:
        pytest.skip("making a cgroup needs root")
    mount = v1_cpu_mount()
    if mount is None:
        pytest.skip("no cgroup v1 hierarchy with the cpu controller is mounted")
    try:
        cgroup = CpuCgroup(mount, QUOTA_US, PERIOD_US)
    except OSError as error:
        pytest.skip(f"cannot make a cpu cgroup under {mount}: {error}")
    try:
        yield cgroup
    finally:
        cgroup.remove()


def test_a_child_in_the_cgroup_is_confined_but_nproc_sees_every_cpu(half_cpu_cgroup):
    """The premise of the feature: the quota applies, yet the usual CPU count ignores it."""
    result = subprocess.run(
        half_cpu_cgroup.wrap("/bin/sh", "-c", "cat /proc/self/cgroup; nproc"),
        capture_output=True, text=True, timeout=30, check=True)
    *cgroup_lines, nproc = result.stdout.splitlines()
    cpu_paths = [path for _, controllers, path in (line.split(":", 2) for line in cgroup_lines)
                 if "cpu" in controllers.split(",")]
    assert cpu_paths == ["/" + half_cpu_cgroup.path.name], result.stdout
    assert (half_cpu_cgroup.path / "cpu.cfs_quota_us").read_text().strip() == str(QUOTA_US)
    assert int(nproc) == len(os.sched_getaffinity(0)), result.stdout


def test_corral_runs_inside_the_cgroup(half_cpu_cgroup):
    """The binary starts and exits cleanly from inside the cgroup, through the same wrapper the
    tests below use, and leaves nothing in it."""
    result = subprocess.run(half_cpu_cgroup.wrap(CORRAL_BIN, "--help"), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "--workers" in result.stdout
    assert half_cpu_cgroup.members() == []


def test_workers_auto_follows_the_quota_not_the_host(half_cpu_cgroup, corral):
    """0.5 CPUs rounds down to 1 worker (at least 1), where gunicorn would count host CPUs;
    nproc in the same cgroup says every CPU of the affinity mask."""
    cpus = len(os.sched_getaffinity(0))
    if cpus < 2:
        pytest.skip("one CPU: the quota and the CPU count give the same answer")
    nproc = subprocess.run(half_cpu_cgroup.wrap("nproc"), capture_output=True, text=True,
                           timeout=30, check=True).stdout
    assert int(nproc) == cpus
    c = corral.start("--workers", "auto", workers=None, wrapper=half_cpu_cgroup.wrap())
    match = c.wait_for_log(r"starting (\d+) workers? \((.*)\) for ")
    print("corral:", match.group(0))
    assert match.group(1) == "1", match.group(0)
    c.wait_for_log(r"auto: 1 worker from cgroup v1 cpu\.cfs_quota_us/cpu\.cfs_period_us "
                   rf"{QUOTA_US}/{PERIOD_US} at \S*{half_cpu_cgroup.path.name}")
    assert re.search(rf"affinity {cpus} CPUs", match.group(2)), match.group(2)
    assert len({slot for slot, _ in c.spawns()}) == 1
    assert c.pid in half_cpu_cgroup.members()
    assert set(c.worker_pids().values()) <= set(half_cpu_cgroup.members())
    assert c.get("/").status == 200


def test_workers_auto_is_the_default(half_cpu_cgroup, corral):
    """Neither --workers nor WEB_CONCURRENCY: auto, so the quota decides here too."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: the quota and the CPU count give the same answer")
    c = corral.start(workers=None, wrapper=half_cpu_cgroup.wrap())
    assert c.wait_for_log(r"starting (\d+) workers? \(auto: ").group(1) == "1"


@pytest.mark.parametrize("args, env, source", [
    pytest.param(["--workers", "3"], {}, "--workers", id="flag"),
    pytest.param([], {"WEB_CONCURRENCY": "3"}, "WEB_CONCURRENCY", id="web-concurrency"),
    pytest.param(["--workers", "3"], {"WEB_CONCURRENCY": "1"}, "--workers", id="flag-wins"),
])
def test_an_explicit_worker_count_is_exact_even_under_a_quota(half_cpu_cgroup, corral, args,
                                                              env, source):
    c = corral.start(*args, workers=None, env=env, wrapper=half_cpu_cgroup.wrap(),
                     wait_ready=False)
    match = c.wait_for_log(r"starting (\d+) workers? \((.*)\) for ")
    assert match.group(1) == "3" and source in match.group(2), match.group(0)
    c.wait_ready(3)
    assert len(c.spawns()) == 3, c.spawns()
    assert set(c.worker_pids().values()) <= set(half_cpu_cgroup.members())


MEMORY_LIMIT = 600 * 1024 * 1024


def make_memory_cgroup(settings: list[tuple[str, int]]) -> V1Cgroup:
    """A v1 memory cgroup with these settings, or a skip saying why there cannot be one."""
    if os.geteuid() != 0:
        pytest.skip("making a cgroup needs root")
    mount = v1_mount("memory")
    if mount is None:
        pytest.skip("no cgroup v1 hierarchy with the memory controller is mounted")
    try:
        return V1Cgroup(mount, settings)
    except OSError as error:
        pytest.skip(f"cannot make a memory cgroup under {mount}: {error}")


@pytest.fixture
def memory_cgroup():
    """A v1 memory cgroup limited to 600 MiB (no CPU quota)."""
    cgroup = make_memory_cgroup([("memory.limit_in_bytes", MEMORY_LIMIT)])
    try:
        yield cgroup
    finally:
        cgroup.remove()


def test_worker_memory_budget_caps_auto_at_the_memory_limit(memory_cgroup, corral):
    """2 CPUs, but 600 MiB / a 512 MiB budget allows 1 worker."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: the CPU count alone gives 1 worker")
    c = corral.start("--worker-memory-budget", "512Mi", workers=None,
                     wrapper=memory_cgroup.wrap())
    match = c.wait_for_log(r"starting (\d+) workers? \((.*)\) for ")
    print("corral:", match.group(0))
    assert match.group(1) == "1", match.group(0)
    assert "memory.limit_in_bytes" in match.group(2) and "600Mi" in match.group(2)
    assert len(c.spawns()) == 1


def test_admin_endpoints_show_how_the_worker_count_was_derived(half_cpu_cgroup, corral):
    """Issue 3: 'corral logs how it derived the number and shows it on the admin endpoints.'"""
    c = corral.start("--workers", "auto", workers=None, wrapper=half_cpu_cgroup.wrap())
    bodies = {path: c.admin(path).text for path in ("/healthz", "/ready", "/metrics")}
    shown = {path: body for path, body in bodies.items()
             if "cfs_quota_us" in body or "auto" in body}
    assert shown, ("no admin endpoint says where the worker count came from (auto, the v1 "
                   f"quota); they answer:\n" + "\n".join(f"{p}: {b}" for p, b in bodies.items()))


def test_workers_auto_inside_a_cgroup_namespace(half_cpu_cgroup, corral):
    """Checklist item 33: in a new cgroup namespace (as a container has) /proc/self/cgroup says
    "/" and the v1 hierarchy is mounted afresh, with the namespace's root, which is the
    limited cgroup, as its root: the quota is read at the mount point."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: the quota and the CPU count give the same answer")
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    mount_fresh = ('mount -t tmpfs cgroups /sys/fs/cgroup && mkdir /sys/fs/cgroup/cpu && '
                   'mount -t cgroup -o cpu cgroup /sys/fs/cgroup/cpu && exec "$@"')
    c = corral.start("--workers", "auto", workers=None, wrapper=half_cpu_cgroup.wrap(
        "unshare", "--cgroup", "--mount", "/bin/sh", "-c", mount_fresh, "sh"))
    match = c.wait_for_log(r"starting (\d+) workers? \((.*)\) for ")
    print("corral:", match.group(0))
    assert match.group(1) == "1", match.group(0)
    assert f"{QUOTA_US}/{PERIOD_US}" in match.group(2)
    assert len(c.spawns()) == 1


@pytest.fixture
def small_memory_cgroup():
    """A v1 memory cgroup limited to 256 MiB, with swap out of the way."""
    cgroup = make_memory_cgroup([("memory.limit_in_bytes", 256 * 1024 * 1024),
                                 ("memory.swappiness", 0)])
    if "oom_kill " not in (cgroup.path / "memory.oom_control").read_text():
        cgroup.remove()
        pytest.skip("this kernel does not count OOM kills (Linux < 4.13)")
    try:
        yield cgroup
    finally:
        cgroup.remove()


def test_a_worker_killed_by_the_oom_killer_is_logged_as_such(small_memory_cgroup, corral):
    """A worker that outgrows the cgroup's memory limit dies by the kernel's SIGKILL: corral
    says so, with the limit, rather than calling it a crash, and counts it as `oom`."""
    c = corral.start(workers=1, app="apps.memory:app", wrapper=small_memory_cgroup.wrap())
    victim = next(iter(c.worker_pids().values()))
    mark = c.mark()
    try:
        c.get("/grow?mb=400", timeout=30)
    except OSError:
        pass  # the worker died under the request: that is the point
    line = c.wait_for_log(rf"worker 0 exited \(pid {victim}\): .*", after=mark).group(0)
    print(line)
    assert ("killed by the kernel's OOM killer (cgroup memory limit 256Mi) (oom)" in line), line
    c.wait_ready(1)
    metrics = c.admin("/metrics").text
    assert 'corral_worker_exits_total{reason="oom"} 1' in metrics, metrics
    # A SIGKILL corral did not send and no OOM kill counted is still a crash.
    victim = next(iter(c.worker_pids().values()))
    mark = c.mark()
    os.kill(victim, signal.SIGKILL)
    line = c.wait_for_log(rf"worker 0 exited \(pid {victim}\): .*", after=mark).group(0)
    assert line.endswith("killed by SIGKILL (crash)"), line


# --------------------------------------------------------------------------------------------
# Kubernetes: the CPU request, and the warning when a container is sized from the host
# --------------------------------------------------------------------------------------------

IN_A_POD = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}


@pytest.fixture
def cpu_shares_cgroup():
    """Makes v1 cpu cgroups with the cpu.shares the kubelet writes for a CPU request
    (millicores * 1024 / 1000), and no quota; removes them afterwards."""
    if os.geteuid() != 0:
        pytest.skip("making a cgroup needs root")
    mount = v1_cpu_mount()
    if mount is None:
        pytest.skip("no cgroup v1 hierarchy with the cpu controller is mounted")
    made = []

    def make(millicores: int) -> V1Cgroup:
        try:
            made.append(V1Cgroup(mount, [("cpu.shares", millicores * 1024 // 1000)]))
        except OSError as error:
            pytest.skip(f"cannot make a cpu cgroup under {mount}: {error}")
        return made[-1]

    try:
        yield make
    finally:
        for cgroup in made:
            cgroup.remove()


def started_workers(c) -> tuple[int, str]:
    match = c.wait_for_log(r"starting (\d+) workers? \((.*)\) for ")
    print("corral:", match.group(0))
    return int(match.group(1)), match.group(2)


@pytest.mark.parametrize("millicores, expected", [(200, 1), (2000, 2), (2500, 2)])
def test_in_a_pod_without_a_cpu_limit_the_request_decides(cpu_shares_cgroup, corral,
                                                          millicores, expected):
    """A pod that asked for 200m gets one worker, not one per CPU of the node."""
    cpus = len(os.sched_getaffinity(0))
    if cpus < 2:
        pytest.skip("one CPU: the request and the CPU count give the same answer")
    expected = min(expected, cpus)
    cgroup = cpu_shares_cgroup(millicores)
    c = corral.start(workers=None, env=IN_A_POD, wrapper=cgroup.wrap())
    workers, reason = started_workers(c)
    assert workers == expected, reason
    assert "the pod's CPU request, cgroup v1 cpu.shares" in reason, reason
    c.wait_ready(expected)


def test_outside_a_pod_the_weight_is_no_request(cpu_shares_cgroup, corral):
    """cpu.shares is a weight among siblings: without KUBERNETES_SERVICE_HOST nobody said it
    stands for a CPU request, so the CPUs of the affinity mask decide as before."""
    cpus = len(os.sched_getaffinity(0))
    c = corral.start(workers=None, wrapper=cpu_shares_cgroup(200).wrap())
    workers, reason = started_workers(c)
    assert workers == cpus and "no CPU quota" in reason, reason


def test_as_pid1_sizing_from_the_host_cpus_is_warned_about(cpu_shares_cgroup, half_cpu_cgroup,
                                                          corral):
    """As a container's PID 1 with no CPU limit, the CPUs corral sees are the machine's: it
    says so once, with what to do. Under a quota, or in a pod with a request, it does not."""
    warning = r"--workers auto counted the host's CPUs \((\d+)\).*set --workers N"
    c = corral.start(workers=None, pidns=True, wrapper=cpu_shares_cgroup(1000).wrap())
    workers, reason = started_workers(c)
    assert "no CPU quota" in reason, reason
    assert int(c.wait_for_log(warning).group(1)) == workers
    assert len(c.find_log(warning)) == 1, c.tail()
    for env, wrapper in (({}, half_cpu_cgroup.wrap()),
                         (IN_A_POD, cpu_shares_cgroup(1000).wrap())):
        quiet = corral.start(workers=None, pidns=True, env=env, wrapper=wrapper)
        started_workers(quiet)
        quiet.wait_ready(1)
        assert not quiet.find_log(warning), quiet.tail()
    # Not PID 1 (a laptop, a VM): the host's CPUs are the right count, and nothing is said.
    plain = corral.start(workers=None, wrapper=cpu_shares_cgroup(1000).wrap())
    started_workers(plain)
    assert not plain.find_log(warning), plain.tail()
