"""apps.basic plus GET /hold?file=PATH: blocks the worker's event loop (it accepts nothing and
serves nothing meanwhile) until PATH exists, at most 60 s, then answers `held <pid>`. A test
keeps every worker busy for exactly as long as it needs, with no timing guess."""

import os
import time
from urllib.parse import parse_qs

from apps.basic import http, lifespan, respond

HOLD_LIMIT = 60.0


def hold_the_event_loop(path):
    deadline = time.monotonic() + HOLD_LIMIT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    elif scope["type"] == "http" and scope["path"] == "/hold":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        hold_the_event_loop(query["file"][0])
        await respond(send, 200, f"held {os.getpid()}")
    elif scope["type"] == "http":
        await http(scope, send)
