"""An app whose workers make processes of their own, for the reaping tests; otherwise it serves
like apps.basic (every other path goes to it).

GET /orphans?n=N&hold=0|1
    Double-forks N grandchildren: each intermediate child forks one grandchild and exits at
    once (the worker reaps the intermediate), so the grandchild is orphaned and reparented to
    the nearest subreaper or to the namespace's init. Answers the grandchildren's pids (as this
    worker sees them) as a JSON list. With hold=0 each grandchild exits at once; with hold=1
    it waits until GET /release, which makes every held grandchild exit at the same moment.
    Grandchildren close every inherited descriptor (the listening socket among them) but the
    one they wait on, and never run Python's shutdown.
GET /release
    Closes the pipe every held grandchild waits on: they all see end-of-file together and exit.
GET /child?s=N
    Starts `sleep N` as a child of the worker (in the worker's process group) and keeps it:
    the worker's own subprocess, as an app that shells out makes one. Answers its pid.
GET /status
    The worker's /proc/self/status lines Sig* as captured when this module was imported, and
    now, as JSON: {"at_import": {...}, "now": {...}}.
"""

import json
import os
import subprocess

from apps.basic import http as basic_http
from apps.basic import lifespan, respond


def _signal_lines():
    with open("/proc/self/status") as status:
        return {key: value.strip() for key, _, value in
                (line.partition(":") for line in status) if key.startswith("Sig")}


AT_IMPORT = _signal_lines()
_children = []  # the worker's own subprocesses, kept so they are not reaped
_held = []  # write ends of the pipes that held grandchildren wait on


def _grandchild(hold_fd):
    try:
        if hold_fd is None:
            os.closerange(3, 1 << 16)
        else:
            os.closerange(3, hold_fd)
            os.closerange(hold_fd + 1, 1 << 16)
            while os.read(hold_fd, 1):
                pass
    finally:
        os._exit(0)


def make_orphans(count, hold):
    hold_r = hold_w = None
    if hold:
        hold_r, hold_w = os.pipe()
    result_r, result_w = os.pipe()
    intermediates = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            try:
                grandchild = os.fork()
                if grandchild == 0:
                    _grandchild(hold_r)
                os.write(result_w, f"{grandchild}\n".encode())
            finally:
                os._exit(0)
        intermediates.append(pid)
    os.close(result_w)
    if hold_r is not None:
        os.close(hold_r)
        _held.append(hold_w)
    for pid in intermediates:
        os.waitpid(pid, 0)
    data = b""
    while True:
        chunk = os.read(result_r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(result_r)
    return [int(line) for line in data.split()]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/orphans":
        query = dict(part.partition("=")[::2]
                     for part in scope["query_string"].decode().split("&") if part)
        pids = make_orphans(int(query.get("n", "1")), query.get("hold", "0") == "1")
        await respond(send, 200, json.dumps(pids), "application/json")
    elif path == "/child":
        query = dict(part.partition("=")[::2]
                     for part in scope["query_string"].decode().split("&") if part)
        child = subprocess.Popen(["sleep", query.get("s", "600")], stdin=subprocess.DEVNULL)
        _children.append(child)
        await respond(send, 200, str(child.pid))
    elif path == "/release":
        released = len(_held)
        while _held:
            os.close(_held.pop())
        await respond(send, 200, str(released))
    elif path == "/status":
        await respond(send, 200, json.dumps({"at_import": AT_IMPORT, "now": _signal_lines()}),
                      "application/json")
    else:
        await basic_http(scope, send)
