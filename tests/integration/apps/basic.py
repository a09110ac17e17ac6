"""The app most integration tests serve.

GET /          200 `ok <pid>`
GET /pid       the worker's pid
GET /sleep?s=N sleeps N seconds without blocking the event loop, then `slept <pid>`
GET /block?s=N blocks the event loop for N seconds (a hung worker, as corral sees it)
GET /env       the worker's environment, as JSON
GET /fds       the worker's open file descriptors, as a JSON list of numbers
GET /pdeathsig the worker's parent-death signal, prctl(PR_GET_PDEATHSIG) (0: none)
"""

import asyncio
import ctypes
import json
import os
import time
from urllib.parse import parse_qs

PR_GET_PDEATHSIG = 2  # <linux/prctl.h>


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    elif scope["type"] == "http":
        await http(scope, send)


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def block_the_event_loop(seconds):
    """Named so that a test can find it in the faulthandler dump of a hung worker."""
    time.sleep(seconds)


async def http(scope, send):
    query = parse_qs(scope["query_string"].decode("latin-1"))
    seconds = float(query.get("s", ["1"])[0])
    pid = os.getpid()
    path = scope["path"]
    if path == "/":
        await respond(send, 200, f"ok {pid}")
    elif path == "/pid":
        await respond(send, 200, str(pid))
    elif path == "/sleep":
        await asyncio.sleep(seconds)
        await respond(send, 200, f"slept {pid}")
    elif path == "/block":
        block_the_event_loop(seconds)
        await respond(send, 200, f"blocked {pid}")
    elif path == "/env":
        await respond(send, 200, json.dumps(dict(os.environ)), "application/json")
    elif path == "/fds":
        fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        await respond(send, 200, json.dumps(fds), "application/json")
    elif path == "/pdeathsig":
        await respond(send, 200, str(parent_death_signal()))
    else:
        await respond(send, 404, "not found")


def parent_death_signal():
    signal_number = ctypes.c_int()
    if ctypes.CDLL(None, use_errno=True).prctl(PR_GET_PDEATHSIG, ctypes.byref(signal_number)):
        raise OSError(ctypes.get_errno(), "prctl(PR_GET_PDEATHSIG)")
    return signal_number.value


async def respond(send, status, text, content_type="text/plain; charset=utf-8"):
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
