"""apps.basic, whose import takes up to 60 s: it creates $SLOW_IMPORT_DIR/importing.<pid>, then
waits until $SLOW_IMPORT_DIR/release exists. A worker that is importing its app, before uvicorn
handles any signal."""

import os
import time
from pathlib import Path

from apps.basic import app  # noqa: F401  (the app served)

LIMIT = 60.0

_dir = Path(os.environ["SLOW_IMPORT_DIR"])
(_dir / f"importing.{os.getpid()}").touch()
_deadline = time.monotonic() + LIMIT
while not (_dir / "release").exists() and time.monotonic() < _deadline:
    time.sleep(0.05)
