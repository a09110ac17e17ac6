"""An app whose logs and failures test_logs.py looks at.

GET /               200 `ok <pid>`
GET /log?level=L    logs, on the logger "observed", a message holding quotes, a line feed,
                    control characters, non-ASCII and bytes that are not UTF-8, with a field
                    passed as `extra`
GET /print          prints two lines to stdout and one to stderr
GET /raise          raises (uvicorn logs "Exception in ASGI application" with the traceback)
GET /thread-raise   an exception escapes a thread of the app
GET /crash          the worker dies by SIGKILL
GET /slow?s=N       answers after N seconds
"""

import asyncio
import logging
import os
import signal
import sys
import threading
from urllib.parse import parse_qs

log = logging.getLogger("observed")
NASTY = 'quote " backslash \\ line\nfeed tab\t bell\x07 nul\x00 é 雪 ' + \
    b"\xff\xfe".decode("utf-8", "surrogateescape")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                log.info("observed app starting in %d", os.getpid())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    query = parse_qs(scope["query_string"].decode("latin-1"))
    path = scope["path"]
    if path == "/log":
        level = getattr(logging, query.get("level", ["WARNING"])[0].upper())
        log.log(level, "nasty: %s", NASTY, extra={"order_id": 42})
    elif path == "/print":
        print("printed line one")
        print("printed line two", flush=True)
        print("printed to stderr", file=sys.stderr, flush=True)
    elif path == "/raise":
        raise RuntimeError("raised by /raise")
    elif path == "/thread-raise":
        thread = threading.Thread(target=fail_in_thread, name="observed-thread")
        thread.start()
        thread.join()
    elif path == "/crash":
        os.kill(os.getpid(), signal.SIGKILL)
    elif path == "/slow":
        await asyncio.sleep(float(query.get("s", ["1"])[0]))
    body = f"ok {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def fail_in_thread():
    raise ValueError("raised in a thread")
