"""apps.basic plus GET /grow?mb=N: the worker allocates N MiB, touches every page, and keeps it
for its whole life (a leak, as --max-worker-memory sees it). Answers `grew <pid> <total MiB>`."""

import os
from urllib.parse import parse_qs

from apps.basic import http, lifespan, respond

_kept = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    elif scope["type"] == "http" and scope["path"] == "/grow":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        mib = int(query.get("mb", ["1"])[0])
        # Multiplying a non-empty bytearray writes every byte, so the pages are resident.
        _kept.append(bytearray(b"\xa5") * (mib * 1024 * 1024))
        total = sum(len(block) for block in _kept) // (1024 * 1024)
        await respond(send, 200, f"grew {os.getpid()} {total}")
    elif scope["type"] == "http":
        await http(scope, send)
