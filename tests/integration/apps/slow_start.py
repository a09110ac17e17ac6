"""An app whose lifespan startup takes $SLOW_START_SECONDS (default 5), then serves like
apps.basic: a worker that is not ready for a while."""

import asyncio
import os

from apps.basic import http, lifespan


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await asyncio.sleep(float(os.environ.get("SLOW_START_SECONDS", "5")))
        await send({"type": "lifespan.startup.complete"})
        await lifespan(receive, send)  # on to shutdown
    elif scope["type"] == "http":
        await http(scope, send)
