"""A Debian bookworm root for the tests that install corral as a user's machine or image would
(the .deb, the container image's root): made once with debootstrap (minbase, plus Debian's
uvicorn and FastAPI for the example app) and kept in $CORRAL_BOOKWORM_CACHE (default
/var/tmp/corral-bookworm, world-readable, outside any checkout); each test works on its own copy
under /var/tmp. debootstrap takes minutes and needs root and a Debian mirror: without them the
tests that need a root are skipped, saying why.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("CORRAL_BOOKWORM_CACHE", "/var/tmp/corral-bookworm"))
PACKAGES = ["python3-uvicorn", "python3-fastapi"]
MIRROR = os.environ.get("CORRAL_DEBIAN_MIRROR", "http://deb.debian.org/debian")
STAMP = "corral-bookworm.stamp"  # written last: a cut-off debootstrap leaves no stamp


def cached_root() -> Path:
    """The cached root, made first if it is missing."""
    if os.geteuid() != 0:
        pytest.skip("making and entering a bookworm root needs root")
    if shutil.which("debootstrap") is None and not (CACHE / "root" / STAMP).exists():
        pytest.skip("debootstrap is not installed (apt-get install debootstrap)")
    CACHE.mkdir(parents=True, exist_ok=True)
    os.chmod(CACHE, 0o755)
    root = CACHE / "root"
    wanted = ",".join(PACKAGES) + "\n"
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # ctest runs two passes of the suite side by side
        if (root / STAMP).exists() and (root / STAMP).read_text() == wanted:
            return root
        shutil.rmtree(root, ignore_errors=True)
        log = CACHE / "debootstrap.log"
        with open(log, "w") as out:
            made = subprocess.run(["debootstrap", "--variant=minbase",
                                   "--include=" + ",".join(PACKAGES), "bookworm", str(root),
                                   MIRROR], stdout=out, stderr=subprocess.STDOUT)
        if made.returncode != 0:
            pytest.skip(f"debootstrap failed (exit {made.returncode}; no mirror?): see {log}")
        subprocess.run(["chroot", str(root), "apt-get", "clean"], check=False)
        (root / STAMP).write_text(wanted)
        return root


class FreshRoot:
    """A copy of the cached root, removed at the end of the `with`."""

    def __enter__(self) -> Path:
        source = cached_root()
        self.dir = Path(tempfile.mkdtemp(prefix="corral-root-", dir="/var/tmp"))
        os.chmod(self.dir, 0o755)
        subprocess.run(["cp", "-a", "--reflink=auto", f"{source}/.", str(self.dir)], check=True)
        (self.dir / STAMP).unlink()
        return self.dir

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
