"""What the shipping tests (test_packaging.py, test_image.py) share: what the build folder of
$CORRAL_BIN says about itself, and its wheel."""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CORRAL_BIN

BUILD = Path(CORRAL_BIN).resolve().parent


def cmake_cache(name: str) -> str | None:
    cache = BUILD / "CMakeCache.txt"
    if not cache.exists():
        return None
    match = re.search(rf"^{name}:\w+=(.*)$", cache.read_text(), re.MULTILINE)
    return match.group(1) if match else None


PORTABLE = cmake_cache("CORRAL_PORTABLE") == "ON"
GLIBC_MIN = cmake_cache("CORRAL_GLIBC_MIN") or "2.35"
# The sanitizer build links Debian's shared libraries (and its runtime) the usual way.
portable_only = pytest.mark.skipif(not PORTABLE, reason="not a portable (release) build")


def built_wheel(into: Path) -> Path:
    """`cmake --build BUILD --target wheel`, then a copy of build/dist's wheel in `into`. Under a
    lock: ctest runs the suite's two passes side by side, and the target rewrites dist/."""
    with open(BUILD / "wheel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = subprocess.run(["cmake", "--build", str(BUILD), "--target", "wheel"],
                               capture_output=True, text=True)
        assert built.returncode == 0, built.stdout + built.stderr
        (found,) = (BUILD / "dist").glob("corral-*.whl")
        return Path(shutil.copy(found, into / found.name))
