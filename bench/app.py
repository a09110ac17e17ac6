"""The benchmark's app: plain ASGI, no framework, so that the numbers measure the server side.

    /               200, a 13-byte text body
    /sleep?ms=N     200 after asyncio.sleep(N ms) (default 100, at most 60000): a slow request
    /grow?kb=N      200, and the worker keeps N KiB more (default 32, at most 1024) for good:
                    the lifecycle benchmark's memory recycling load (lifecycle.py)

It speaks the lifespan protocol (startup/shutdown complete) so every server logs
"Application startup complete." once per worker, which bench.py uses to see all workers ready.
"""

import asyncio
from urllib.parse import parse_qs

BODY = b"Hello, world\n"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]
KEPT = []  # what /grow keeps; filled with non-zero bytes so that the pages are really resident


def query_int(scope, name, default):
    try:
        return int(parse_qs(scope["query_string"].decode()).get(name, [str(default)])[0])
    except ValueError:
        return default


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if kind != "http":
        return
    if scope["path"] == "/sleep":
        ms = query_int(scope, "ms", 100)
        await asyncio.sleep(min(max(ms, 0), 60000) / 1000)
    elif scope["path"] == "/grow":
        KEPT.append(b"\x01" * (min(max(query_int(scope, "kb", 32), 0), 1024) * 1024))
    elif scope["path"] != "/":
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
