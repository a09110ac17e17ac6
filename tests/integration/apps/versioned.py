"""apps.basic, plus /version: the text of the file named by $VERSION_FILE as it was when this
module was imported. A test rewrites the file and reloads, to see which workers imported the
app afresh."""

import os

from apps import basic

_file = os.environ.get("VERSION_FILE")
VERSION = open(_file).read().strip() if _file else "none"


async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/version":
        await basic.respond(send, 200, VERSION)
    else:
        await basic.app(scope, receive, send)
