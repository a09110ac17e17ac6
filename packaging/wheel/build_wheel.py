"""Builds corral's wheel from a built binary, offline, with the `wheel` package alone.

usage: build_wheel.py --binary PATH --version V --glibc 2.35 --readme README.md --out DIR

The wheel holds the binary as a script (`corral-V.data/scripts/corral`), so that pip or uv put
it in a virtualenv's bin/ beside that environment's python, as ruff and uv ship theirs, and the
`corral` package (packaging/wheel/corral/), whose __main__ runs that binary for
`python -m corral`. The binary needs only glibc, so the tag is manylinux_X_Y for the newest
glibc symbol version it uses (PEP 600), and the Python tag is any Python 3.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

SUMMARY = "Process supervisor and launcher for uvicorn ASGI workers (a gunicorn replacement)"


def metadata(version: str, readme: str) -> str:
    return (f"Metadata-Version: 2.1\nName: corral\nVersion: {version}\nSummary: {SUMMARY}\n"
            "Requires-Python: >=3.8\n"
            "Classifier: Programming Language :: Python :: 3\n"
            "Classifier: Operating System :: POSIX :: Linux\n"
            "Classifier: Framework :: AsyncIO\n"
            "Description-Content-Type: text/markdown\n\n" + readme)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True, type=Path)
    parser.add_argument("--version", required=True)
    parser.add_argument("--glibc", required=True)
    parser.add_argument("--readme", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()

    major, minor = args.glibc.split(".")
    tag = f"py3-none-manylinux_{major}_{minor}_x86_64"
    name = f"corral-{args.version}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / name
        shutil.copytree(HERE / "corral", root / "corral",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (root / "corral" / "_version.py").write_text(
            f'VERSION = "{args.version}"\nNEEDS_GLIBC = ({major}, {minor})\n')
        scripts = root / f"{name}.data" / "scripts"
        scripts.mkdir(parents=True)
        shutil.copy2(args.binary, scripts / "corral")
        (scripts / "corral").chmod(0o755)
        info = root / f"{name}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(metadata(args.version, args.readme.read_text()))
        (info / "WHEEL").write_text("Wheel-Version: 1.0\nGenerator: corral build_wheel.py\n"
                                    f"Root-Is-Purelib: false\nTag: {tag}\n")
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.glob("corral-*.whl"):
            old.unlink()
        # `wheel pack` writes RECORD (hashes and sizes) and names the file from WHEEL's tag.
        subprocess.run([sys.executable, "-m", "wheel", "pack", "--dest-dir", str(args.out),
                        str(root)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
