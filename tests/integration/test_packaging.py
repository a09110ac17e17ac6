"""Shipping corral (issue 10): the portable release binary, `cmake --install`, the .deb (its
metadata and contents, then installed into a fresh Debian bookworm root, where it serves the
bundled example), and the wheel (its contents, then installed offline into a fresh virtualenv,
from whose bin/ corral finds that venv's python by itself).

The build folder is the one holding $CORRAL_BIN; what the build says about itself (portable or
not, the glibc it needs) is read from its CMakeCache.txt.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bookworm import FreshRoot
from conftest import CORRAL_BIN, REPO_ROOT, http_get
from shipping import BUILD, GLIBC_MIN, built_wheel, portable_only

VERSION = subprocess.run([CORRAL_BIN, "--version"], capture_output=True, text=True).stdout.split()[-1]


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run([str(a) for a in args], **kwargs)
    print(f"$ {' '.join(map(str, args))}\nexit {result.returncode}\n{result.stdout}{result.stderr}")
    return result


# --------------------------------------------------------------------------------------------
# The binary
# --------------------------------------------------------------------------------------------


@portable_only
def test_the_release_binary_needs_nothing_but_glibc():
    ldd = run("ldd", CORRAL_BIN).stdout
    libraries = {line.split()[0] for line in ldd.splitlines() if line.strip()}
    assert libraries <= {"linux-vdso.so.1", "libc.so.6", "libm.so.6",
                         "/lib64/ld-linux-x86-64.so.2"}, ldd
    symbols = run("objdump", "-T", CORRAL_BIN).stdout
    needed = max(version_tuple(v) for v in re.findall(r"\bGLIBC_([\d.]+)\b", symbols))
    print(f"newest glibc symbol version: {needed}; stated: {GLIBC_MIN}")
    assert needed <= version_tuple(GLIBC_MIN)
    size = os.path.getsize(CORRAL_BIN)
    print(f"size: {size} bytes ({size / 2**20:.2f} MiB)")
    assert size < 3 * 2**20
    sections = run("readelf", "-S", "-W", CORRAL_BIN).stdout
    assert ".debug_info" not in sections and ".symtab" not in sections  # stripped
    assert ".gnu_debuglink" in sections  # gdb finds corral.debug beside it


# --------------------------------------------------------------------------------------------
# cmake --install
# --------------------------------------------------------------------------------------------


def test_cmake_install_puts_the_binary_units_man_page_and_readme_in_place(tmp_path):
    prefix = tmp_path / "prefix"
    assert run("cmake", "--install", BUILD, "--prefix", prefix).returncode == 0
    corral = prefix / "bin" / "corral"
    assert run(corral, "--version").stdout == f"corral {VERSION}\n"
    shipped = sorted(p.name for p in (REPO_ROOT / "packaging" / "systemd").iterdir()
                     if p.suffix in (".service", ".socket"))
    unit_dir = prefix / "lib" / "systemd" / "system"
    assert sorted(p.name for p in unit_dir.iterdir()) == shipped
    for name in ("corral.service", "corral@.service"):
        text = (unit_dir / name).read_text()
        assert "Documentation=man:corral(1)" in text
        exec_start = re.search(r"^ExecStart=(\S+)", text, re.MULTILINE).group(1)
        assert exec_start == str(corral), f"{name} runs {exec_start}"
    page = gzip.decompress((prefix / "share/man/man1/corral.1.gz").read_bytes()).decode()
    assert page.startswith(".\\\" DO NOT MODIFY THIS FILE!") and ".TH CORRAL \"1\"" in page
    for expected in ("\\-\\-workers", "\\-\\-graceful\\-timeout", "probe", "run", "Exit codes"):
        assert expected in page, expected
    assert (prefix / "share/doc/corral/README.md").read_text().startswith("# corral")
    assert (prefix / "share/corral/examples/app.py").exists()
    assert not list(prefix.rglob("*.debug"))
    verify_installed_units(unit_dir, tmp_path / "instances")


def verify_installed_units(unit_dir: Path, scratch: Path) -> None:
    """The units as installed (ExecStart rewritten to the prefix) pass `systemd-analyze verify`
    with nothing on stderr, where a bad value would only warn; templates as an instance."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze (Debian package systemd) is not installed")
    scratch.mkdir()
    for unit in unit_dir.iterdir():
        shutil.copy(unit, scratch / unit.name.replace("@.", "@demo."))
    units = sorted(str(p) for p in scratch.iterdir())
    result = run(analyze, "verify", "--man=no", *units)
    print(result.stdout, result.stderr)
    assert result.returncode == 0 and result.stderr == "", result.stderr


# --------------------------------------------------------------------------------------------
# The .deb
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    made = run("cpack", "-G", "DEB", "--config", BUILD / "CPackConfig.cmake", "-B", out, cwd=out)
    assert made.returncode == 0
    (package,) = out.glob("corral_*.deb")
    return package


@portable_only
def test_the_deb_says_what_it_is_and_needs_only_libc6(deb):
    info = run("dpkg-deb", "--info", deb).stdout
    fields = dict(re.findall(r"^ (\S+): (.*)$", info, re.MULTILINE))
    arch = run("dpkg", "--print-architecture").stdout.strip()
    assert (fields["Package"], fields["Version"], fields["Architecture"]) == ("corral", VERSION,
                                                                              arch)
    assert fields["Depends"] == f"libc6 (>= {GLIBC_MIN})"
    assert fields["Section"] == "httpd" and fields["Priority"] == "optional"
    assert fields["Description"].startswith("supervisor and launcher for uvicorn ASGI workers")
    assert "gunicorn -k uvicorn.workers.UvicornWorker" in info  # the long description

    contents = run("dpkg-deb", "--contents", deb).stdout
    entries = {line.split()[-1]: line.split() for line in contents.splitlines()}
    assert entries["./usr/bin/corral"][:2] == ["-rwxr-xr-x", "root/root"]
    for path in ("./usr/lib/systemd/system/corral.service", "./usr/lib/systemd/system/corral.socket",
                 "./usr/lib/systemd/system/corral@.service", "./usr/share/man/man1/corral.1.gz",
                 "./usr/share/doc/corral/README.md", "./usr/share/corral/examples/app.py"):
        assert path in entries, path
    assert all(fields_[1] == "root/root" for fields_ in entries.values())
    assert not any(path.endswith(".debug") for path in entries)


@portable_only
def test_the_deb_installs_into_a_fresh_bookworm_and_serves_the_example(deb, corral):
    with FreshRoot() as root:
        assert not (root / "usr/bin/corral").exists()
        shutil.copy(deb, root / "tmp" / deb.name)
        assert run("chroot", root, "dpkg", "-i", f"/tmp/{deb.name}").returncode == 0
        assert run("chroot", root, "dpkg-query", "-W", "corral").stdout == f"corral\t{VERSION}\n"
        assert run("chroot", root, "corral", "--version").stdout == f"corral {VERSION}\n"
        unit = (root / "usr/lib/systemd/system/corral.service").read_text()
        assert re.search(r"^ExecStart=/usr/bin/corral ", unit, re.MULTILINE)

        # The example, as the README says, by the packaged binary and the root's own uvicorn,
        # corral as PID 1 of a pid namespace inside that root.
        c = corral.start(raw_args=["/usr/bin/corral", "--workers", "2", "--bind", "127.0.0.1:0",
                                   "--admin-bind", "127.0.0.1:0", "--app-dir",
                                   "/usr/share/corral", "examples.app:app"],
                         wrapper=[f"--root={root}"], pidns=True)  # /proc: mounted in root
        assert "with /usr/bin/python3" in c.stderr_text()
        pids = {json.loads(http_get(c.port, "/").body)["pid"] for _ in range(6)}
        print("served by", pids)
        assert pids
        c.send_signal(signal.SIGTERM)
        assert c.wait_exit() == 0


# --------------------------------------------------------------------------------------------
# The wheel
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return built_wheel(tmp_path_factory.mktemp("wheel"))


@portable_only
def test_the_wheel_carries_the_binary_as_a_script_tagged_for_its_glibc(wheel):
    major, minor = GLIBC_MIN.split(".")
    assert wheel.name == f"corral-{VERSION}-py3-none-manylinux_{major}_{minor}_x86_64.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        script = archive.getinfo(f"corral-{VERSION}.data/scripts/corral")
        assert (script.external_attr >> 16) & 0o111 == 0o111  # executable once installed
        assert archive.read(script) == Path(CORRAL_BIN).read_bytes()
        tags = archive.read(f"corral-{VERSION}.dist-info/WHEEL").decode()
        assert "Root-Is-Purelib: false" in tags
        assert f"Tag: py3-none-manylinux_{major}_{minor}_x86_64" in tags
        assert {"corral/__init__.py", "corral/__main__.py", "corral/_version.py",
                f"corral-{VERSION}.dist-info/RECORD"} <= names


def test_the_wheel_installs_offline_into_a_venv_and_serves_from_its_bin(wheel, corral, tmp_path):
    # Under /var/tmp: the workers import the app from here.
    venv = Path(subprocess.check_output(["mktemp", "-d", "/var/tmp/corral-venv-XXXXXX"],
                                        text=True).strip())
    try:
        assert run(sys.executable, "-m", "venv", "--system-site-packages", venv).returncode == 0
        installed = run(venv / "bin/pip", "install", "--no-index", "--no-deps",
                        "--no-cache-dir", wheel)
        assert installed.returncode == 0
        corral_bin = venv / "bin" / "corral"
        assert os.access(corral_bin, os.X_OK)
        assert run(venv / "bin/python", "-m", "corral", "--version").stdout == f"corral {VERSION}\n"
        # On a glibc older than the binary needs (pip refuses the wheel there; this is for one
        # installed anyway): one line, no traceback. The C library's answer is stood in for.
        for libc, says in [("glibc 2.31", "this system has 2.31"), ("", "has none (musl?)")]:
            old = run(venv / "bin/python", "-c",
                      f"import os, runpy; os.confstr = lambda name: {libc!r}; "
                      "runpy.run_module('corral', run_name='__main__')")
            assert old.returncode == 1 and old.stdout == "" and old.stderr.count("\n") == 1
            assert old.stderr.startswith(f"corral: error: corral needs glibc {GLIBC_MIN} or newer")
            assert says in old.stderr
        app_dir = venv / "app"
        shutil.copytree(REPO_ROOT / "examples", app_dir / "examples")

        # As in a Dockerfile: the venv on PATH, VIRTUAL_ENV unset, no --python.
        path = f"{venv}/bin:/usr/local/bin:/usr/bin:/bin"
        c = corral.start(raw_args=["corral", "--workers", "1", "--bind", "127.0.0.1:0",
                                   "--admin-bind", "127.0.0.1:0", "--app-dir", str(app_dir),
                                   "examples.app:app"],
                         env={"PATH": path}, wait_ready=False)
        c.wait_ready(1)
        assert re.search(rf" with {venv}/bin/python$", c.stderr_text(), re.MULTILINE)
        assert http_get(c.port, "/").status == 200
        probe = run(corral_bin, "probe", "--admin", f"127.0.0.1:{c.admin_port}")
        assert probe.returncode == 0
        assert probe.stdout == f"corral probe: /ready 200 at 127.0.0.1:{c.admin_port}\n"
        c.send_signal(signal.SIGTERM)
        assert c.wait_exit() == 0

        # Nor on PATH (a unit's ExecStart=/app/.venv/bin/corral): still the venv's python.
        c = corral.start(raw_args=[str(corral_bin), "--workers", "1", "--bind", "127.0.0.1:0",
                                   "--admin-bind", "127.0.0.1:0", "--app-dir", str(app_dir),
                                   "examples.app:app"],
                         env={"PATH": "/usr/local/bin:/usr/bin:/bin"}, wait_ready=False)
        c.wait_ready(1)
        assert re.search(rf" with {venv}/bin/python$", c.stderr_text(), re.MULTILINE)
        c.send_signal(signal.SIGTERM)
        assert c.wait_exit() == 0
    finally:
        shutil.rmtree(venv, ignore_errors=True)
