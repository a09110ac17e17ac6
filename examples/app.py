"""A small FastAPI app to try corral with, from the repository root:

    corral --workers 2 examples.app:app

then `curl localhost:8000/` a few times: the pid in the answers shows which worker served each.
"""

import asyncio
import logging
import os
import time

from fastapi import FastAPI, Query

log = logging.getLogger("uvicorn.error")  # uvicorn's logger, so that these lines show up
app = FastAPI(title="corral example")

# Startup and shutdown hooks run in each worker. FastAPI >= 0.93 prefers a `lifespan=` context
# manager; these hooks are what Debian bookworm's FastAPI 0.92 has, and newer ones still run them.


@app.on_event("startup")
async def startup():
    app.state.started = time.monotonic()
    log.info("example app: worker %d starting", os.getpid())


@app.on_event("shutdown")
async def shutdown():
    log.info("example app: worker %d up %.0f s, stopping", os.getpid(),
             time.monotonic() - app.state.started)


@app.get("/")
async def hello():
    return {"message": "Hello from corral", "pid": os.getpid()}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q, "pid": os.getpid()}


@app.get("/slow")
async def slow(seconds: float = Query(1.0, ge=0, le=60)):
    """Sleeps without blocking the worker: try it, then stop corral with ^C or SIGTERM."""
    await asyncio.sleep(seconds)
    return {"slept": seconds, "pid": os.getpid()}
