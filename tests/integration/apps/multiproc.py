"""An app instrumented with prometheus_client in multiprocess mode, as FastAPI apps under
gunicorn are: each worker writes its metrics to $PROMETHEUS_MULTIPROC_DIR, and /metrics adds up
every worker's.

GET /             counts the request; `ok <pid>`
GET /hold?s=N     holds an in-progress request for N seconds (a livesum gauge)
GET /metrics      the exposition of every worker's metrics, live and dead
"""

import asyncio
import os
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, multiprocess

REQUESTS = Counter("app_requests", "Requests served")
IN_PROGRESS = Gauge("app_in_progress", "Requests in progress", multiprocess_mode="livesum")
ALIVE = Gauge("app_workers_alive", "1 per worker alive", multiprocess_mode="livesum")
ALIVE.set(1)


async def app(scope, receive, send):
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        return
    path = scope["path"]
    if path == "/metrics":
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        REQUESTS.inc()
        if path == "/hold":
            seconds = float(parse_qs(scope["query_string"].decode())["s"][0])
            with IN_PROGRESS.track_inprogress():
                await asyncio.sleep(seconds)
        body = f"ok {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
