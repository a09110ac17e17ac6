"""For --preload: a module that is costly to import (32 MiB written at import, as a big app's
libraries are) and says where it was imported, where its lifespan startup ran, and which
version of its file ($VERSION_FILE) it read. With $PRELOAD_THREAD set, importing it starts a
thread, which a fork does not carry over."""

import json
import os
import threading
import time

BALLAST = b"\x01" * (32 * 1024 * 1024)
IMPORTED_IN = os.getpid()
_file = os.environ.get("VERSION_FILE")
VERSION = open(_file).read().strip() if _file else "none"
STARTED_IN = []

if os.environ.get("PRELOAD_THREAD"):
    threading.Thread(target=lambda: time.sleep(3600), name="poller", daemon=True).start()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                STARTED_IN.append(os.getpid())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps({"pid": os.getpid(), "imported_in": IMPORTED_IN, "started_in": STARTED_IN,
                       "version": VERSION, "ballast": len(BALLAST)}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
