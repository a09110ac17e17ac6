"""`python -m corral ARGS...`: runs the corral binary this wheel installed, in place of this
interpreter (exec), so signals and the exit code are corral's own."""

from __future__ import annotations

import os
import sys
import sysconfig

from corral._version import NEEDS_GLIBC  # written by build_wheel.py, as the manylinux tag


def find_binary() -> str | None:
    """The scripts folder of the environment (or the user scheme) this package is in."""
    schemes = [sysconfig.get_default_scheme()]
    if sys.version_info >= (3, 10):
        schemes.append(sysconfig.get_preferred_scheme("user"))
    for scheme in schemes:
        candidate = os.path.join(sysconfig.get_path("scripts", scheme), "corral")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def glibc_problem() -> str | None:
    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else ""
    name, _, version = (libc or "").partition(" ")
    if name != "glibc":
        return (f"corral needs glibc {NEEDS_GLIBC[0]}.{NEEDS_GLIBC[1]} or newer; this system "
                "has none (musl?): use a glibc base image (python:3-slim, not -alpine)")
    have = tuple(int(part) for part in version.split(".")[:2])
    if have < NEEDS_GLIBC:
        return (f"corral needs glibc {NEEDS_GLIBC[0]}.{NEEDS_GLIBC[1]} or newer; this system has "
                f"{version}: use a newer base image (Debian 12, Ubuntu 22.04)")
    return None


def main() -> None:
    problem = glibc_problem()
    if problem:
        sys.exit(f"corral: error: {problem}")
    binary = find_binary()
    if binary is None:
        sys.exit("corral: error: the corral binary is not in this environment's scripts folder; "
                 "reinstall it: pip install --force-reinstall corral")
    os.execv(binary, [binary, *sys.argv[1:]])


if __name__ == "__main__":
    main()
