"""An app whose lifespan startup fails: corral must report the error once and exit 3.

It fails the way frameworks (Starlette, FastAPI) do: the exception is raised after receiving
lifespan.startup and reported with lifespan.startup.failed. The failed message is what matters:
with --lifespan auto, uvicorn reads a bare exception as "lifespan unsupported" and serves anyway.
"""

import traceback

from apps.basic import http

# Apart from the `raise` line, whose source a traceback shows: the tests count the message.
MESSAGE = "broken on purpose in lifespan startup"


async def app(scope, receive, send):
    if scope["type"] == "http":
        await http(scope, send)
        return
    message = await receive()
    assert message["type"] == "lifespan.startup"
    try:
        raise RuntimeError(MESSAGE)
    except RuntimeError:
        await send({"type": "lifespan.startup.failed", "message": traceback.format_exc()})
        raise
