"""packaging/docker/: the container image recipe (issue 10, item 5). No container engine runs
here, so what can be checked without one is: every COPY source exists in the build context and
is not ignored, the build stage copies every source CMakeLists.txt builds from, each ENTRYPOINT
+ CMD argv is one corral accepts; and the final image's root, assembled from a Debian bookworm
root the way the Dockerfile assembles it, runs corral as PID 1 of its own pid, mount and network
namespaces as the image's non-root user, serves, answers its HEALTHCHECK, runs a one-off
command through the same ENTRYPOINT, and exits 0 on SIGTERM.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import signal
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bookworm import FreshRoot
from conftest import CORRAL_BIN, EVENT_DEADLINE, REPO_ROOT, wait_until
from shipping import built_wheel, portable_only

DOCKER_DIR = REPO_ROOT / "packaging" / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
IGNORE = DOCKER_DIR / "Dockerfile.dockerignore"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        values = [value for key, value in self.instructions if key == keyword]
        return values[-1] if values else None

    def exec_form(self, keyword: str) -> list[str]:
        value = self.last(keyword)
        assert value is not None, f"stage {self.name}: no {keyword}"
        argv = json.loads(value)  # the exec form: no shell needed at run time
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
        return argv

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for key, value in self.instructions:
            if key == "ENV":
                for name, text in re.findall(r'(\w+)=("[^"]*"|\S+)', value):
                    values[name] = text.strip('"')
        return values


def stages() -> list[Stage]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", value, re.IGNORECASE)
            found.append(Stage(match[1], match[2]))
        elif found:
            found[-1].instructions.append((keyword, value.strip()))
    return found


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore's rule: the last pattern that matches the path or a parent of it wins."""
    parts = path.strip("/").split("/")
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern[1:] if negate else pattern
        pattern = pattern.rstrip("/").replace("**/", "")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(parts[depth - 1], pattern):
                result = not negate
                break
    return result


def ignore_patterns() -> list[str]:
    return [line.strip() for line in IGNORE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def copy_sources(stage: Stage) -> list[str]:
    sources = []
    for key, value in stage.instructions:
        if key != "COPY" or "--from=" in value:
            continue
        words = [w for w in value.split() if not w.startswith("--")]
        sources += words[:-1]
    return sources


# --------------------------------------------------------------------------------------------
# The recipe, read
# --------------------------------------------------------------------------------------------


def test_every_copy_source_is_in_the_context_and_not_ignored():
    patterns = ignore_patterns()
    all_stages = stages()
    assert [s.name for s in all_stages][-1] == "app"  # `docker build` without --target
    checked = 0
    for stage in all_stages:
        for source in copy_sources(stage):
            matches = list(REPO_ROOT.glob(source))
            assert matches, f"stage {stage.name}: COPY {source}: not in the repository"
            for match in matches:
                relative = str(match.relative_to(REPO_ROOT))
                assert not ignored(relative, patterns), f"COPY {source}: {IGNORE.name} drops it"
                checked += 1
        for key, value in stage.instructions:
            if key == "COPY" and "--from=" in value:
                origin = re.search(r"--from=(\S+)", value)[1]
                assert origin in {s.name for s in all_stages} or "/" in origin, value
    print(f"{checked} COPY sources checked")
    # What the context must not carry.
    assert ignored("build/corral", patterns) and ignored(".git/HEAD", patterns)
    assert ignored("tests/integration/conftest.py", patterns)


def test_the_build_stage_copies_every_source_cmake_builds_from():
    (build,) = [s for s in stages() if s.name == "corral-build"]
    copied = {Path(source).parts[0] for source in copy_sources(build)}
    cmake = (REPO_ROOT / "CMakeLists.txt").read_text()
    cmake += (REPO_ROOT / "packaging/cmake/packaging.cmake").read_text()
    cmake = re.sub(r"#.*", "", cmake)  # comments name files too
    paths = re.findall(r"\b([a-z_]+/[\w/.@-]+\.(?:cpp|py|cmake|md|service|socket|example))\b",
                       cmake)
    # Those in the source tree (not generated/ in the build folder), but for the tests.
    used = {Path(p).parts[0] for p in paths if (REPO_ROOT / p).exists()} - {"tests"}
    print("top-level folders CMake reads:", sorted(used), "copied:", sorted(copied))
    assert used <= copied
    assert "-DBUILD_TESTING=OFF" in build.last("RUN")


@pytest.mark.parametrize("target", ["app", "distroless"])
def test_entrypoint_and_cmd_are_argv_corral_accepts(target):
    (stage,) = [s for s in stages() if s.name == target]
    assert stage.exec_form("ENTRYPOINT") == ["corral"]
    cmd = stage.exec_form("CMD")
    # Parsed as corral parses it; --help stops before anything is started.
    result = subprocess.run([CORRAL_BIN, *cmd, "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    bad = subprocess.run([CORRAL_BIN, *cmd, "--workers", "lots"], capture_output=True, text=True)
    assert bad.returncode == 2  # the same argv is parsed, not skipped
    health = json.loads(re.match(r".*\bCMD\s+(\[.*\])$", stage.last("HEALTHCHECK"))[1])
    assert health[:2] == ["corral", "probe"]
    assert subprocess.run([CORRAL_BIN, *health[1:], "--help"], capture_output=True).returncode == 0
    user = stage.last("USER")
    if target == "app":
        assert user == "app"
    assert stage.base.endswith(":nonroot") or user not in (None, "root", "0")


# --------------------------------------------------------------------------------------------
# The image's root, assembled and run
# --------------------------------------------------------------------------------------------

UID = 10001  # the Dockerfile's useradd --uid


def assemble(root: Path, wheel: Path) -> None:
    """The `venv` and `app` stages of the Dockerfile, on a bookworm root standing in for
    python:3.11-slim: PyPI is out of reach, so the venv sees Debian's uvicorn and FastAPI
    (--system-site-packages) where the image has requirements.txt installed in it."""
    app = [s for s in stages() if s.name == "app"][0]
    useradd = [v for k, v in app.instructions if k == "RUN" and v.startswith("useradd")]
    assert useradd, "the app stage makes its user with useradd"
    subprocess.run(["chroot", str(root), *useradd[0].split()], check=True)
    subprocess.run(["chroot", str(root), "python3", "-m", "venv", "--without-pip",
                    "--system-site-packages", "/app/.venv"], check=True)
    # The root has no pip: the venv's python (the root's Python 3.11 is this machine's) runs
    # this machine's Debian pip, through --system-site-packages, to install into the venv.
    venv_python = root / "app/.venv/bin/python"
    assert os.readlink(venv_python) in ("python3", "/usr/bin/python3")
    subprocess.run([str(venv_python), "-m", "pip", "install", "--no-index", "--no-deps",
                    "--no-cache-dir", str(wheel)], check=True, capture_output=True)
    assert (root / "app/.venv/bin/corral").exists()
    shutil.copytree(REPO_ROOT / "examples", root / "app/examples",
                    ignore=shutil.ignore_patterns("__pycache__"))


def image_command(root: Path, argv: list[str], workdir: str) -> list[str]:
    """argv run as a container runtime would: PID 1 of new pid, mount and network namespaces
    (loopback up), chrooted to `root`, in `workdir`, as the image's user."""
    inner = (f"ip link set lo up && mount -t proc proc {root}/proc && exec unshare "
             f"--root={root} --wd={workdir} --setgid {UID} --setuid {UID} \"$@\"")
    return ["unshare", "--pid", "--fork", "--net", "--mount", "--propagation=private",
            "sh", "-c", inner, "sh", *argv]


def in_container(pid: int, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    """`docker exec`: argv in the namespaces, root and directory of `pid`, as the user, with
    the image's environment."""
    return subprocess.run(["nsenter", f"--target={pid}", "--net", "--mount", "--pid",
                           "--root", "--wd", f"--setuid={UID}", f"--setgid={UID}", *argv],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return built_wheel(tmp_path_factory.mktemp("wheel"))


@portable_only
def test_the_image_runs_corral_as_pid_1_as_its_user_and_stops_on_sigterm(wheel, tmp_path):
    app = [s for s in stages() if s.name == "app"][0]
    env = app.env()
    env["PATH"] = env["PATH"].replace("$PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                      "/usr/bin:/sbin:/bin")
    argv = app.exec_form("ENTRYPOINT") + app.exec_form("CMD")
    workdir = app.last("WORKDIR")
    with FreshRoot() as root:
        assemble(root, wheel)
        log = tmp_path / "corral.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(image_command(root, argv, workdir), stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            corral = wait_until(lambda: (subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
                or [None])[0], EVENT_DEADLINE, "corral under unshare")
            corral = int(corral)
            wait_until(lambda: "state Starting -> Running" in log.read_text()
                       or proc.poll() is not None, 60, "corral to serve")
            print(log.read_text())
            assert proc.poll() is None
            status = Path(f"/proc/{corral}/status").read_text()
            assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.MULTILINE), "not PID 1"
            assert re.search(rf"^Uid:\s+{UID}\s+{UID}\s+{UID}\s+{UID}$", status, re.MULTILINE)
            # Seen from a chroot (the fresh-machine check runs the suite in one), the kernel
            # names the file from the host's root, with the chroot's folder in front.
            assert os.readlink(f"/proc/{corral}/exe").endswith(str(root / "app/.venv/bin/corral"))
            assert "with /app/.venv/bin/python" in log.read_text()

            health = in_container(corral, env, "corral", "probe")
            print(health)
            assert health.returncode == 0 and health.stdout.startswith("corral probe: /ready 200")
            served = in_container(corral, env, "python3", "-c",
                                  "import urllib.request as u; print(u.urlopen("
                                  "'http://127.0.0.1:8000/', timeout=10).read().decode())")
            assert served.returncode == 0 and "Hello from corral" in served.stdout, served

            os.kill(corral, signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
            print(log.read_text())
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

        # A one-off command through the same ENTRYPOINT (a migration Job): its exit code.
        job = subprocess.run(image_command(root, [*app.exec_form("ENTRYPOINT"), "run", "--",
                                                  "python3", "-c",
                                                  "import os, sys; print(os.getppid(), "
                                                  "os.getuid()); sys.exit(3)"], workdir),
                             capture_output=True, text=True, env=env, timeout=60)
        print(job)
        assert job.returncode == 3
        assert job.stdout.split() == ["1", str(UID)]  # corral, PID 1, is the command's parent
