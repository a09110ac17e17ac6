"""apps.basic with two ways for a test to hold a worker exactly as long as it needs, with no
timing guess:

GET /hold?file=PATH  blocks the worker's event loop (it accepts nothing and serves nothing
                     meanwhile) until PATH exists, at most 60 s; then answers `held <pid>`.
Boot hold            when $HOLD_BOOT_DIR/hold-boot exists as a worker starts, its lifespan
                     startup creates $HOLD_BOOT_DIR/booting.<pid> and waits (without blocking
                     the event loop) until $HOLD_BOOT_DIR/release.<pid> exists or hold-boot is
                     gone, at most 60 s: a worker that is booting, with uvicorn's signal
                     handlers installed but not serving yet.
"""

import asyncio
import os
import time
from pathlib import Path
from urllib.parse import parse_qs

from apps.basic import http, lifespan, respond

HOLD_LIMIT = 60.0


def hold_the_event_loop(path):
    deadline = time.monotonic() + HOLD_LIMIT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


async def hold_boot():
    directory = os.environ.get("HOLD_BOOT_DIR")
    if not directory or not (Path(directory) / "hold-boot").exists():
        return
    pid = os.getpid()
    (Path(directory) / f"booting.{pid}").touch()
    deadline = time.monotonic() + HOLD_LIMIT
    while ((Path(directory) / "hold-boot").exists()
           and not (Path(directory) / f"release.{pid}").exists()
           and time.monotonic() < deadline):
        await asyncio.sleep(0.01)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await hold_boot()
        await send({"type": "lifespan.startup.complete"})
        await lifespan(receive, send)  # on to shutdown
    elif scope["type"] == "http" and scope["path"] == "/hold":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        hold_the_event_loop(query["file"][0])
        await respond(send, 200, f"held {os.getpid()}")
    elif scope["type"] == "http":
        await http(scope, send)
