"""Which uvicorn the workers of the integration tests import.

By default, the one installed in $CORRAL_TEST_PYTHON (Debian bookworm's is 0.17.6). With
$CORRAL_TEST_UVICORN naming a folder that holds a `uvicorn` package (the source of another
release; tests/CMakeLists.txt passes CORRAL_UVICORN_CURRENT), the workers run a wrapper instead:
a shell script that puts a copy of that package on PYTHONPATH, so before the interpreter's own,
and execs $CORRAL_TEST_PYTHON.

The copy and the wrapper live in a new temporary folder under /var/tmp that every user can read
and search:
some tests run the workers as `--user nobody`, and neither the checkout nor the folder named
need be readable by nobody. The folder is removed when the test session ends.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import tempfile


def interpreter(python: str, uvicorn_folder: str | None) -> str:
    """The --python for the workers: `python` itself, or a wrapper (see the module docstring)."""
    if not uvicorn_folder:
        return python
    package = os.path.join(os.path.abspath(uvicorn_folder), "uvicorn")
    if not os.path.isfile(os.path.join(package, "__init__.py")):
        raise RuntimeError(f"CORRAL_TEST_UVICORN={uvicorn_folder}: no uvicorn package in it")
    # Not under /tmp: the Kubernetes tests give corral's pod an emptyDir there, hiding it.
    top = tempfile.mkdtemp(prefix="corral-test-uvicorn-", dir="/var/tmp")
    atexit.register(shutil.rmtree, top, ignore_errors=True)
    site = os.path.join(top, "site")
    shutil.copytree(package, os.path.join(site, "uvicorn"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    copy_function=shutil.copyfile)
    for folder, _, files in os.walk(top):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    wrapper = os.path.join(top, "python")
    with open(wrapper, "w") as script:
        # After any PYTHONPATH the caller set, so that a test can put its own package first;
        # still before the interpreter's site-packages.
        script.write("#!/bin/sh\n"
                     f"# uvicorn from {package}\n"
                     f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}"{shlex.quote(site)} '
                     f'exec {shlex.quote(python)} "$@"\n')
    os.chmod(wrapper, 0o755)
    return wrapper
