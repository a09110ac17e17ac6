"""apps.basic, plus what an app leaves to run as its worker exits: a non-daemon thread that
finishes only after uvicorn has returned (its event loop closed), and an atexit handler. Each
appends a line to $EXIT_HOOKS_FILE, `thread <pid>` and `atexit <pid>`; the interpreter's own
exit would join the thread first, then run the handler."""

import asyncio
import atexit
import os
import threading
import time

from apps.basic import http

LIMIT = 60.0  # seconds a thread waits for the loop to close, should it never close


def note(what):
    with open(os.environ["EXIT_HOOKS_FILE"], "a") as file:
        file.write(f"{what} {os.getpid()}\n")


def finish_after(loop):
    deadline = time.monotonic() + LIMIT
    while not loop.is_closed() and time.monotonic() < deadline:
        time.sleep(0.01)
    note("thread")


atexit.register(note, "atexit")


async def app(scope, receive, send):
    if scope["type"] == "http":
        await http(scope, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            threading.Thread(target=finish_after, args=(asyncio.get_running_loop(),)).start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
