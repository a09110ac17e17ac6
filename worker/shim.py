# corral worker
"""One corral worker: serves an ASGI app with uvicorn on the sockets corral bound.

corral runs this as `python -c <this source>` (there is no __file__) with its settings in
$CORRAL_WORKER_SETTINGS and a SOCK_SEQPACKET control channel; worker/PROTOCOL.md is the contract.
It uses the standard library and uvicorn, and relies on some internals of uvicorn's and of
CPython's beyond their public API: class Internals holds every such use, with the uvicorn versions
it was verified with, and checks before serving that they are there, so that a uvicorn without
one is reported as CONFIG_ERROR rather than failing later.

Exit status: 0 after serving (a graceful stop included, whether or not uvicorn re-raises the
stop signal after it), or when stopped by a signal during lifespan startup; 2 after CONFIG_ERROR;
3 after BOOT_ERROR. Under corral --reload an app that fails to load is no BOOT_ERROR: the worker
sends LOAD_ERROR and serves a 503 that says why, until corral replaces it. A worker dies by
SIGTERM or SIGINT that comes while the app is imported (before uvicorn handles them) or after
uvicorn has returned, and by SIGABRT (sent by corral to a hung worker) after faulthandler has
dumped every thread's stack to stderr.
"""

import sys

# `python -c` puts the working directory first on sys.path. Drop it before importing anything
# else, so that a project file named like a stdlib module (logging.py, socket.py) cannot shadow
# it here; the app directory goes back in front once uvicorn is imported, as --app-dir does.
if sys.path and sys.path[0] == "":
    del sys.path[0]

import array
import asyncio
import atexit
import contextvars
import errno
import faulthandler
import fcntl
import functools
import gc
import http
import importlib
import importlib.util
import inspect
import io
import json
import logging
import mmap
import os
import re
import signal
import socket
import threading
import time
import traceback

EXIT_CONFIG_ERROR = 2
EXIT_BOOT_ERROR = 3
MAX_DATAGRAM = 32 * 1024
PYTHON = sys.executable or "this Python"
# The uvicorn releases corral's integration tests run against (tests/CMakeLists.txt).
VERIFIED_UVICORN = "0.17.6 and 0.51.0"
# How long a stopping worker waits, no longer accepting, before uvicorn closes the connections
# that have not sent a request yet (see Internals.make_server).
ACCEPTED_LINGER = 0.5
# Connections a worker takes from the shared listen queue each time it wakes up for it. asyncio
# takes up to `backlog` at once (uvicorn passes its backlog, 2048), so with keep-alive clients
# the first worker to wake took every queued connection (50 of 50 in one of 5 launches measured
# with wrk -c50 and 2 workers) while the others idled; one at a time lets every worker that is
# awake take its turn.
ACCEPTS_PER_WAKEUP = 1
# The scoreboard (see Scoreboard): one page of 8-byte cells, the first of them its header.
SCOREBOARD_SIZE = 4096
SCOREBOARD_CELLS = SCOREBOARD_SIZE // 8
# A peer that has looked at the shared queue, or started a request, this recently is awake: a
# worker leaves a connection to it when it holds fewer.
PEER_FRESH_MS = 20
# How long a worker waits for a peer that holds fewer connections but has not looked lately (an
# idle worker, which the same connection woke up) to look. A peer that lets this pass is busy,
# hung or gone, and is not waited for again until it looks.
PEER_GRACE_MS = 10
# How long a worker that left the queue's next connection to a peer waits before it looks again.
ACCEPT_DEFER = 0.001
# How often the request count is compared with max_requests.
REQUEST_CHECK = 0.1
# How often the worker tells corral how many requests it served and has in flight, if that
# changed (REQUESTS=, worker/PROTOCOL.md).
REQUEST_REPORT = 1.0
# The size of one IMPORTS message (--reload), well within what corral reads from the template.
IMPORTS_CHUNK = 3000
# How long a forked worker waits for corral to adopt it (the process between them exits at once).
ADOPTION_WAIT = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_NAME = 15
# Process names (comm) are at most 15 bytes, the kernel's limit.
TEMPLATE_NAME = b"corral-template"
WORKER_NAME = b"corral-worker"


def die(message):
    """For corral's own mistakes, when there is no control channel to report them on."""
    print(f"corral worker: {message}", file=sys.stderr)
    sys.exit(EXIT_CONFIG_ERROR)


class ConfigError(Exception):
    """What the worker reports as CONFIG_ERROR: workers cannot run with this interpreter, its
    uvicorn or these settings, whatever the app."""


class Control:
    """The worker's end of the control channel: one `KEY=value` datagram per message."""

    def __init__(self, fd):
        os.set_inheritable(fd, False)  # the app's subprocesses must not hold it
        self.sock = socket.socket(fileno=fd)

    def send(self, key, value="1", block=True):
        """False if corral has closed its end: it no longer counts this worker as its own."""
        data = f"{key}={value}".encode("utf-8", "replace")[:MAX_DATAGRAM]
        try:
            # Heartbeats are sent from the event loop, which must never wait on corral.
            self.sock.send(data, 0 if block else socket.MSG_DONTWAIT)
        except (BrokenPipeError, ConnectionResetError):
            return False
        except OSError:
            pass  # not reading now; if corral dies, PR_SET_PDEATHSIG ends this worker
        return True

    def fail(self, key, text, status):
        self.send(key, clip(text, MAX_DATAGRAM - len(key) - 1))
        sys.exit(status)


def clip(text, limit):
    """Fits text into `limit` bytes of UTF-8, keeping its start and, mostly, its end (where a
    traceback names the error)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    head = limit // 8
    tail = limit - head - 64  # the marker fits in 64 bytes
    marker = f"\n[... {len(data) - head - tail} bytes cut ...]\n"
    return (data[:head].decode("utf-8", "ignore") + marker
            + data[-tail:].decode("utf-8", "ignore"))


def read_settings():
    """(settings, control channel fd, role), taken out of the environment: the app must not see
    them. The role is "" for a worker, "template" or "check"."""
    raw = os.environ.pop("CORRAL_WORKER_SETTINGS", None)
    # The spawner picks the control channel's fd, so it comes beside the settings.
    control_fd = os.environ.pop("CORRAL_CONTROL_FD", None)
    # The worker template (--start-method forkserver) gets slot 0's settings, and so does the
    # check of corral --check-config.
    role = os.environ.pop("CORRAL_WORKER_ROLE", "")
    if raw is None:
        die("CORRAL_WORKER_SETTINGS is not set; this program is run by corral")
    try:
        settings = json.loads(raw)
    except ValueError as exc:
        die(f"CORRAL_WORKER_SETTINGS is not valid JSON: {exc}")
    if not isinstance(settings, dict):
        die("CORRAL_WORKER_SETTINGS is not a JSON object")
    if control_fd is None:
        die("CORRAL_CONTROL_FD is not set; this program is run by corral")
    if not (control_fd.isascii() and control_fd.isdigit()):
        die(f"CORRAL_CONTROL_FD is not a file descriptor number: {control_fd!r}")
    return settings, int(control_fd), role


class ListeningSocket(socket.socket):
    """A socket corral has bound and set listening. asyncio's create_server calls listen()
    again with the backlog it is given, which here only says how many connections the worker
    may accept at each wake-up: the queue's length, which every worker shares, stays corral's.
    asyncio's loop accepts through accept(), where a worker with a Balancer lets a peer that
    holds fewer connections take the next one."""

    balancer = None

    def listen(self, backlog=None):
        pass

    def accept(self):
        balancer = self.balancer
        if balancer is not None and balancer.leave_to_peer() and balancer.pause(self):
            raise BlockingIOError(errno.EAGAIN, "left to a worker with fewer connections")
        accepted = super().accept()
        if balancer is not None:
            balancer.accepted()
        return accepted


class Balancer:
    """Spreads connections evenly over the workers: with keep-alive clients, whichever worker
    woke first used to take most of the connections opened at once, and keep them, while the
    others idled (25-31 of 50 in 5 launches with 2 workers, accepting one per wake-up).

    Every worker that listens is woken for each new connection. Before it accepts, it writes
    the time and how many connections it holds to its cell of a scoreboard all workers share,
    and if a peer that holds fewer looked at the queue (or started a request) within
    PEER_FRESH_MS, it leaves the connection to that peer: it stops watching the socket for
    ACCEPT_DEFER, then looks again. The peer was woken too, and takes it. A peer that holds
    fewer but has not looked lately is most likely idle, and gets PEER_GRACE_MS to wake up and
    look; one that lets that pass is not waited for again until it looks. So the connections
    stay within about one of each other, and a peer that is hung or gone delays a connection
    once, by at most PEER_FRESH_MS + PEER_GRACE_MS.

    This needs asyncio's selector loop, which accepts through the socket's accept(); uvloop
    accepts in libuv, and its workers simply take what they are woken for."""

    def __init__(self, scoreboard):
        self.board = scoreboard.board
        self.mine = 2 * scoreboard.cell  # [mine] when I last looked, [mine + 1] my connections
        self.connections = ()  # uvicorn's set of open connections, once the server exists
        self.stopped = False
        self.waiting_since = None  # when this worker began to wait for peers to look
        self.given_up = {}  # peer -> its time when this worker stopped waiting for it

    def leave_to_peer(self):
        board, mine = self.board, self.mine
        now = monotonic_ms()
        held = len(self.connections)
        board[mine] = now
        board[mine + 1] = held
        asleep = []
        for peer in range(2, 2 * min(board[0], SCOREBOARD_CELLS), 2):
            looked = board[peer]
            if board[peer + 1] >= held or peer == mine or looked in (0, self.given_up.get(peer)):
                continue  # 0: not accepting (stopping, or not serving yet)
            if elapsed_ms(looked, now) < PEER_FRESH_MS:
                return True
            asleep.append(peer)
        if not asleep:
            self.waiting_since = None
            return False
        # A wait that began long ago ended when a peer took the connection: this is a new one.
        if self.waiting_since is None or elapsed_ms(self.waiting_since, now) > 2 * PEER_GRACE_MS:
            self.waiting_since = now
        if elapsed_ms(self.waiting_since, now) < PEER_GRACE_MS:
            return True
        self.given_up.update((peer, board[peer]) for peer in asleep)
        self.waiting_since = None
        return False

    def accepted(self):
        self.board[self.mine + 1] = len(self.connections) + 1

    def touch(self):
        """A request starts: this worker's loop turns, and can take a connection soon."""
        if not self.stopped:
            self.board[self.mine] = monotonic_ms()

    def stop(self):
        """The worker stops accepting: no peer leaves a connection to it from now on."""
        self.stopped = True
        self.board[self.mine] = 0

    def pause(self, sock):
        """Stops watching `sock` for ACCEPT_DEFER; False (and no balancing from now on) where
        the loop is not asyncio's selector loop (Internals)."""
        loop = asyncio.get_running_loop()
        watch = Internals.reader_of(loop, sock.fileno())
        if watch is None:
            sock.balancer = None
            return False
        loop.remove_reader(sock.fileno())
        loop.call_later(ACCEPT_DEFER, self.resume, loop, sock, watch)
        return True

    def resume(self, loop, sock, watch):
        # A worker that stopped in between closed the socket (fileno -1): it accepts no more.
        if not self.stopped and sock.fileno() != -1:
            loop.add_reader(sock.fileno(), *watch)


class Scoreboard:
    """One page of memory shared by corral's workers (a memfd corral creates and every worker
    inherits), where each worker has a cell: [when it last looked at the listening queue, in
    CLOCK_MONOTONIC ms mod 2**32 (0: it does not accept), connections it holds]. Cell 0's first
    field is one past the highest cell any worker has taken, so that a look reads only those.

    A worker takes the first cell no live worker holds: it holds a POSIX lock on the cell's
    bytes, which the kernel releases when the worker exits however it exits. Workers forked
    from the template do not inherit the template's locks (it takes none anyway)."""

    def __init__(self, fd, board, cell):
        self.fd, self.board, self.cell = fd, board, cell

    @classmethod
    def open(cls, fd):
        """The worker's cell of the scoreboard at `fd`, or None without one."""
        if fd is None:
            return None
        try:
            board = memoryview(mmap.mmap(fd, SCOREBOARD_SIZE)).cast("I")
        except (OSError, ValueError, TypeError):
            return None
        for cell in range(1, SCOREBOARD_CELLS):
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 8, 8 * cell)
            except OSError:
                continue
            board[2 * cell] = 0
            board[2 * cell + 1] = 0
            # Two workers raising the mark at once can lose one write; looking again fixes it.
            while board[0] <= cell:
                board[0] = cell + 1
            return cls(fd, board, cell)
        return None


@functools.lru_cache(maxsize=None)
def loop_is_asyncio(loop):
    """Asked when the config is made and when the sockets are set up: the search once."""
    return loop == "asyncio" or (loop == "auto" and importlib.util.find_spec("uvloop") is None)


def monotonic_ms():
    """CLOCK_MONOTONIC, which all processes share, in ms modulo 2**32 (a scoreboard field)."""
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


def elapsed_ms(then, now):
    return (now - then) & 0xFFFFFFFF


def open_sockets(fds, control):
    """Socket objects for the listening fds corral passed, with their real family: unlike
    uvicorn's fd= option, which labels every fd AF_UNIX, so asyncio would not set TCP_NODELAY."""
    socks = []
    for fd in fds:
        try:
            os.set_inheritable(fd, False)
            socks.append(ListeningSocket(fileno=fd))
        except OSError as exc:
            control.fail("CONFIG_ERROR", f"fd {fd} from corral is not a usable socket: {exc}",
                         EXIT_CONFIG_ERROR)
    return socks


def import_uvicorn(control):
    try:
        import uvicorn
    except Exception as exc:
        control.fail("CONFIG_ERROR",
                     f"{PYTHON} cannot import uvicorn ({exc}); install it in that interpreter "
                     "(Debian: apt install python3-uvicorn; otherwise pip install uvicorn) "
                     "or point --python at one that has it", EXIT_CONFIG_ERROR)
    return uvicorn


class Internals:
    """Every use the shim makes of uvicorn's and CPython's internals. Outside this class it
    uses only their public API: uvicorn.Config with its documented options, its loggers, ASGI,
    and the properties and methods the server class made here adds (stopping, serving,
    requests_served, drain).

    Verified by running corral's integration tests with uvicorn 0.17.6 (Debian bookworm's) and
    0.51.0, on CPython 3.11; tests/CMakeLists.txt registers both passes. Checked: `start`, by
    check() and make_server() before the app is imported; `use`, where it is used, before READY;
    `tests`, by the integration tests only; `none`, only a slower fork would show it missing. A
    check that fails is a CONFIG_ERROR naming what is missing.

    internal                        why the shim needs it                   checked  verified
    ------------------------------  --------------------------------------  -------  -------------
    Server.handle_exit(sig, frame)  to see each stop signal uvicorn         start    0.17.6 0.51.0
      overridden                    handles: a stop is no boot failure,
                                    responses ask clients to close, the
                                    re-raised signal is let go
    Server.startup(sockets=),       stopped during startup: shut down       start    0.17.6 0.51.0
      shutdown(sockets=), awaited   once, properly; before uvicorn's
      by serve() in that order;     shutdown: stop accepting and give
      serve() skips shutdown when   connections accepted a moment ago
      should_exit (0.17) or not     their request's bytes
      started (0.51)
    Server.servers, set by          the asyncio servers that stop           use      0.17.6 0.51.0
      startup()                     accepting before the linger
    Server.server_state             linger only while connections are       start    0.17.6 0.51.0
      .connections                  open
    Server.server_state             --max-requests: RECYCLE at the limit    start    0.17.6 0.51.0
      .total_requests
    Server.started, should_exit     READY once serving; a worker nobody     start    0.17.6 0.51.0
                                    supervises drains itself
    startup() passes                asyncio's create_server(sock=,          tests    0.17.6 0.51.0
      config.backlog to             backlog=) accepts up to backlog
      create_server(sock=)          connections per wake-up: the shim's
                                    backlog is ACCEPTS_PER_WAKEUP, and
                                    ListeningSocket keeps listen() from
                                    shortening the shared queue
    Config.load(), loaded,          WorkerApp wraps the app every           use      0.17.6 0.51.0
      loaded_app replaced after     connection serves; serve() does not
      load()                        load again
    Config(callback_notify=,        uvicorn's first call comes right        start    0.17.6 0.51.0
      timeout_notify=) with         after startup (last_notified starts
      Server.last_notified = 0      at 0), then never: that call is READY
    startup() goes through the      a worker stopped during lifespan        tests    0.17.6 0.51.0
      sockets only after lifespan   startup is handed no socket, so it
      startup                       takes no connection it would reset
    serve() puts back the SIGTERM   run() owns those handlers and lets      tests    0.51.0 (0.17.6
      and SIGINT handlers it        that re-raise go: a graceful stop                does not
      found, then raises again      exits 0 in every version                         re-raise)
      each one it handled (>=0.29)
    lifespan startup failure:       a boot failure, reported once           tests    0.17.6 0.51.0
      startup() returns, started
      False (0.17); sys.exit(3)
    Config.load() logs, then        BOOT_ERROR carries what it logged       tests    0.17.6 0.51.0
      sys.exit()s, if it cannot
      import the app
    Config() configures logging     BootLogs holds records from then on,    tests    0.17.6 0.51.0
      as it is built                so a boot error is printed once
    uvicorn.access records: msg     the access log's fields (method, path,  tests    0.17.6 0.51.0
      '%s - "%s %s HTTP/%s" %d',    status, client) and its text with the
      args (client, method, path,   duration; any other record goes on
      http_version, status), logged as it is
      from the request's task as
      the response starts
    Config(...).load() imports      the worker template's warm-up           none     0.17.6 0.51.0
      the protocol, loop and
      lifespan modules
    a failed load or lifespan       --reload: the same worker then serves   tests    0.17.6 0.51.0
      startup leaves the sockets    the error (503) with a second Server
      unused and open
    asyncio's selector loop: its    Balancer: a worker that leaves a        use      CPython 3.11
      _selector.get_key(fd).data[0] connection to a peer stops watching
      is the reader's Handle, with  the socket, then watches it again with
      _callback and _args           the same callback (without them: no
                                    balancing)
    CPython threading._shutdown,    leave(): join the app's threads, run    use      CPython 3.11
      atexit._run_exitfuncs         its atexit handlers, then os._exit
                                    (without them: sys.exit)
    """

    def __init__(self, uvicorn):
        self.uvicorn = uvicorn
        self.where = f"uvicorn {getattr(uvicorn, '__version__', '(version unknown)')} in {PYTHON}"

    def missing(self, problems):
        return ConfigError(
            f"{self.where} lacks what corral's workers rely on: {'; '.join(problems)}. corral is "
            f"verified with uvicorn {VERIFIED_UVICORN}: install one of those in that "
            "interpreter, or use a corral release that supports this uvicorn")

    def check(self):
        """The self-check of what can be seen before a server exists; raises ConfigError."""
        server, config = self.uvicorn.Server, self.uvicorn.Config
        problems = []
        handle_exit = positional(getattr(server, "handle_exit", None))
        if handle_exit is None or len(handle_exit) != 3:
            problems.append("uvicorn.Server.handle_exit(sig, frame) is not there or takes other "
                            "arguments (it tells corral's worker that uvicorn is stopping)")
        for name, why in (("startup", "a worker stopped while starting shuts down properly"),
                          ("shutdown", "a stopping worker stops accepting first")):
            method = getattr(server, name, None)
            if not (inspect.iscoroutinefunction(method) and has_parameter(method, "sockets")):
                problems.append(f"uvicorn.Server.{name} is not a coroutine function with a "
                                f"`sockets` parameter ({why})")
        if not has_parameter(getattr(server, "run", None), "sockets"):
            problems.append("uvicorn.Server.run has no `sockets` parameter (it serves the "
                            "sockets corral bound)")
        if not callable(getattr(config, "load", None)):
            problems.append("uvicorn.Config.load() is not there (it imports the app)")
        for name in ("callback_notify", "timeout_notify"):
            if not has_parameter(config, name):
                problems.append(f"uvicorn.Config has no `{name}` option (its first call says "
                                "the worker is ready)")
        if problems:
            raise self.missing(problems)

    # uvicorn.Config options corral passes only when they are set, with the first uvicorn
    # release that has each (uvicorn's release notes; the pull request in parentheses). The
    # others corral passes are in every release it supports.
    SINCE = {
        "ws_per_message_deflate": "0.17.0",  # (#1300)
        "h11_max_incomplete_event_size": "0.18.0",  # (#1514)
        "ws_max_queue": "0.23.0",  # (#2033)
    }

    def unsupported(self, options):
        """ConfigError naming each of `options` (uvicorn.Config keywords) that this uvicorn's
        Config does not take, as corral's option and with the release that has it; or None."""
        try:
            known = inspect.signature(self.uvicorn.Config).parameters
        except (TypeError, ValueError):
            return None  # no signature to compare with: uvicorn.Config itself will say
        missing = [name for name in options if name not in known]
        if not missing:
            return None
        flags = ", ".join("--header" if name == "headers" else "--" + name.replace("_", "-")
                          + (f" (uvicorn >= {self.SINCE[name]})" if name in self.SINCE else "")
                          for name in missing)
        return ConfigError(f"{self.where} does not support {flags}: upgrade uvicorn in that "
                           "interpreter, or leave the option unset")

    @staticmethod
    def accepts_one_per_wakeup(settings):
        """Whether the worker's loop will be asyncio's, whose create_server(sock=, backlog=)
        accepts up to `backlog` connections per wake-up. uvloop (`auto` picks it when it is
        installed, as uvicorn[standard] does) calls listen(2) with that backlog, which would
        shorten the queue all workers share to one connection: it gets corral's backlog."""
        return loop_is_asyncio(settings.get("uvicorn", {}).get("loop", "auto"))

    def uvicorn_options(self, settings):
        options = settings.get("uvicorn", {})
        if self.accepts_one_per_wakeup(settings):
            options = {**options, "backlog": ACCEPTS_PER_WAKEUP}
        return options

    def make_config(self, settings, notify):
        problem = self.unsupported(settings.get("uvicorn", {}))
        if problem is not None:
            raise problem
        try:
            return self.uvicorn.Config(
                settings["app"],
                factory=settings.get("factory", False),
                callback_notify=notify,
                # uvicorn calls callback_notify right after startup (last_notified starts at
                # 0), then every timeout_notify seconds. The first call is the READY edge: the
                # heartbeat runs on its own timer. "Never again" must be a finite number:
                # infinity would suppress the first call too.
                timeout_notify=365 * 24 * 3600.0,
                **self.uvicorn_options(settings))
        except Exception as exc:
            if isinstance(exc, TypeError) and "keyword argument" in str(exc):
                raise ConfigError(f"{self.where} does not support an option corral passed "
                                  f"({exc}); upgrade uvicorn or leave that option unset") from None
            raise ConfigError(f"{self.where} rejected corral's settings: "
                              f"{type(exc).__name__}: {exc}") from None

    def make_server(self, config):
        """A uvicorn.Server that tells a stop from a boot failure and stops without dropping a
        connection; raises ConfigError if one of its internals is missing."""
        internals = self

        class WorkerServer(self.uvicorn.Server):
            def __init__(self, config):
                super().__init__(config)
                # uvicorn's own exit flag is also set by a failed lifespan startup; these tell
                # a stop requested by corral (or ^C) apart from a boot failure.
                self.handled_signals = []
                self.balancer = None  # set by the Worker when the workers share the load

            @property
            def stopping(self):
                return bool(self.handled_signals)

            @property
            def serving(self):
                return self.started

            @property
            def requests_served(self):
                return self.server_state.total_requests

            def drain(self):
                self.should_exit = True

            def handle_exit(self, sig, frame):
                self.handled_signals.append(sig)
                super().handle_exit(sig, frame)

            async def startup(self, sockets=None):
                await super().startup(sockets=sockets)
                if self.started and not isinstance(getattr(self, "servers", None), list):
                    raise internals.missing(["uvicorn.Server.servers is not a list after "
                                             "startup (a stopping worker stops accepting first)"])
                if self.started and self.stopping:
                    # Stopped while its listeners were being created: uvicorn 0.17 would return
                    # without a shutdown and drop what they had accepted. Shut down properly,
                    # once.
                    await self.shutdown(sockets=sockets)
                    self.started = False

            async def shutdown(self, sockets=None):
                # uvicorn's shutdown closes every connection that has no request in progress,
                # and that includes one accepted a moment ago whose request bytes are still on
                # the way: its client would see the connection close unanswered. Stop accepting
                # first, give such connections a moment to deliver their request, then shut
                # down as usual.
                if self.balancer is not None:
                    self.balancer.stop()
                for server in self.servers:
                    server.close()
                if self.server_state.connections:
                    await asyncio.sleep(ACCEPTED_LINGER)
                await super().shutdown(sockets=sockets)

        server = WorkerServer(config)
        problems = []
        if getattr(server, "started", None) is not False:
            problems.append("uvicorn.Server.started is not False before startup (READY waits "
                            "for it)")
        if getattr(server, "should_exit", None) is not False:
            problems.append("uvicorn.Server.should_exit is not False before startup (a worker "
                            "nobody supervises sets it to drain)")
        if getattr(server, "last_notified", None) != 0:
            problems.append("uvicorn.Server.last_notified does not start at 0 (callback_notify "
                            "would not say at once that the worker is ready)")
        state = getattr(server, "server_state", None)
        if not isinstance(getattr(state, "total_requests", None), int):
            problems.append("uvicorn.Server.server_state has no total_requests count "
                            "(--max-requests compares it)")
        if not hasattr(getattr(state, "connections", None), "__len__"):
            problems.append("uvicorn.Server.server_state has no connections set (a stopping "
                            "worker waits while it is not empty)")
        if problems:
            raise self.missing(problems)
        return server

    def load_app(self, config, wrap):
        """Imports the app (uvicorn logs, then sys.exit()s, on some import errors) and puts
        wrap(app) in its place."""
        config.load()
        if getattr(config, "loaded", None) is not True or not hasattr(config, "loaded_app"):
            raise self.missing(["uvicorn.Config.load() sets no `loaded` flag or no `loaded_app` "
                                "(corral's worker wraps the app it serves)"])
        config.loaded_app = wrap(config.loaded_app)

    class Listeners(list):
        """The listening sockets as handed to uvicorn, which goes through them to start
        accepting once lifespan startup is done. A worker told to stop while it booted finds
        none: taking connections from the shared queue only to quit without answering them
        would reset them, where any other worker would serve them."""

        def __init__(self, socks, server):
            super().__init__(socks)
            self.server = server

        def __iter__(self):
            if self.server.stopping and not self.server.serving:
                return iter(())
            return super().__iter__()

    def run(self, server, socks):
        """Serves until stopped; returns with server.serving False if lifespan startup failed
        (uvicorn 0.17).

        uvicorn >= 0.29 puts back the SIGTERM and SIGINT handlers it found once it has shut
        down, then raises again each stop signal it handled: under SIG_DFL, the disposition
        the shim keeps while the app is imported, a worker that drained gracefully would end
        killed by the signal. So the shim owns those handlers around uvicorn's: its handler
        lets go as many of each signal as uvicorn handled (uvicorn's own handler was in place
        when they came, so only the re-raise comes after), and ends the worker as SIG_DFL would
        for any other (one that comes before uvicorn's handlers are in place)."""
        let_go = []

        def on_stop(sig, frame):
            if server.handled_signals.count(sig) > let_go.count(sig):
                let_go.append(sig)
                return
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)

        for sig in STOP_SIGNALS:
            signal.signal(sig, on_stop)
        try:
            server.run(sockets=self.Listeners(socks, server))
        finally:
            # What uvicorn 0.17 leaves (asyncio's loop gives SIGINT to KeyboardInterrupt) would
            # differ from what later releases leave: from here on, a stop ends the worker.
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)

    def warm_up(self, settings):
        """Imports what uvicorn.Config.load() imports for these settings, but the app."""
        try:
            self.uvicorn.Config(placeholder_app, **settings.get("uvicorn", {})).load()
        except Exception:
            pass  # each worker reports what is wrong with its settings itself

    @staticmethod
    def access_parts(record):
        """(client, method, path, http_version, status) of uvicorn's access record, or None."""
        args = record.args
        if record.msg == '%s - "%s %s HTTP/%s" %d' and isinstance(args, tuple) and len(args) == 5:
            return args
        return None

    @staticmethod
    def reader_of(loop, fd):
        """(callback, *args) that asyncio's selector loop runs when `fd` is readable, so that
        the Balancer can stop watching a listening socket and watch it again; None on any other
        loop."""
        try:
            handle = loop._selector.get_key(fd).data[0]
            return (handle._callback, *handle._args)
        except (AttributeError, KeyError, IndexError, TypeError, ValueError):
            return None

    @staticmethod
    def finish_interpreter():
        """Joins the app's non-daemon threads and runs its atexit handlers, as the interpreter
        does when it exits; False if this interpreter lacks the means."""
        shutdown_threads = getattr(threading, "_shutdown", None)
        run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
        if shutdown_threads is None or run_exit_functions is None:
            return False
        shutdown_threads()
        run_exit_functions()
        return True


def find_module(name, app_dir):
    """Where the module `name` (dotted) would be imported from, with app_dir first on sys.path,
    found without importing it or its packages (which would run the app's code); None if it is
    nowhere."""
    import importlib.machinery
    path = [os.path.abspath(app_dir)] + sys.path
    parts = name.split(".")
    spec = None
    for depth in range(len(parts)):
        if not path:
            return None  # a module, not a package, where a package was named
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:depth + 1]), path)
        if spec is None:
            return None
        path = spec.submodule_search_locations
    return spec.origin or "a namespace package"


def check(settings, control):
    """corral --check-config: what a worker would find before it imports the app, reported as
    CHECKED=<what was found> or CONFIG_ERROR=<what is wrong>; nothing is served or imported of
    the app."""
    uvicorn = import_uvicorn(control)
    internals = Internals(uvicorn)
    options = settings.get("uvicorn", {})
    try:
        internals.check()
        problem = internals.unsupported(options)
        if problem is not None:
            raise problem
        try:
            # What a worker does before it imports the app: TLS certificates, headers and the
            # protocol, loop and lifespan modules.
            uvicorn.Config(placeholder_app, **options).load()
        except Exception as exc:
            raise ConfigError(f"{internals.where} cannot use corral's settings: "
                              f"{type(exc).__name__}: {exc}") from None
    except ConfigError as exc:
        control.fail("CONFIG_ERROR", str(exc), EXIT_CONFIG_ERROR)
    app_dir = settings.get("app_dir", ".")
    module = settings.get("app", "").partition(":")[0]
    found = find_module(module, app_dir)
    if found is None:
        control.fail("CONFIG_ERROR",
                     f"APP {settings.get('app')!r}: no module {module!r} in "
                     f"{os.path.abspath(app_dir)} (--app-dir) or on {PYTHON}'s sys.path",
                     EXIT_CONFIG_ERROR)
    control.send("CHECKED", f"{module} found at {found}; uvicorn "
                            f"{getattr(uvicorn, '__version__', '?')} on Python "
                            f"{sys.version.split()[0]} ({PYTHON})")
    sys.exit(0)


def positional(function):
    """The names of function's positional parameters, or None if it has no signature."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def has_parameter(function, name):
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


async def placeholder_app(scope, receive, send):
    """What the template gives uvicorn.Config.load() to import everything else; never called."""


class Requests:
    """What the worker counts of its HTTP requests, for corral's metrics: plain integers touched
    once per request on the event loop's thread."""

    def __init__(self):
        self.served = 0
        self.in_flight = 0


# The request the current task serves, for the access log (see AccessTiming).
CURRENT_REQUEST = contextvars.ContextVar("corral_request", default=None)


class WorkerApp:
    """Wraps the app to count and time its HTTP requests, and so that, once the worker is told
    to stop, every response asks its client to close the connection.

    Closing: uvicorn closes a connection after a response with `Connection: close` (its docs,
    server-behavior.md), so a client that reuses its keep-alive connection while the worker
    drains gets its answer and moves to another worker. Otherwise the connection would stay
    open and idle until uvicorn's shutdown closes it, and a client that sends its next request
    just then finds it closed under it (the keep-alive race).

    Timing: a request ends when the last body message is sent (or, without one, when the app
    returns); AccessTiming holds uvicorn's access record until then."""

    CLOSE = (b"connection", b"close")

    def __init__(self, app, server, requests):
        self.app, self.server, self.requests = app, server, requests
        self.balancer = server.balancer

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.balancer is not None:
            self.balancer.touch()
        requests = self.requests
        requests.in_flight += 1
        timing = RequestTiming()
        CURRENT_REQUEST.set(timing)

        async def send_wrapped(message):
            kind = message["type"]
            if kind == "http.response.start" and self.server.stopping:
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"connection" for name, _ in headers):
                    message = {**message, "headers": headers + [self.CLOSE]}
            await send(message)
            if kind == "http.response.body" and not message.get("more_body", False):
                timing.finish()

        try:
            return await self.app(scope, receive, send_wrapped)
        finally:
            requests.in_flight -= 1
            requests.served += 1
            timing.finish()


class RequestTiming:
    """One request's start, and uvicorn's access record while it waits for the request's end."""

    __slots__ = ("start", "held", "duration_ms")

    def __init__(self):
        self.start = time.perf_counter()
        self.held = None
        self.duration_ms = None

    def finish(self):
        if self.duration_ms is not None:
            return
        self.duration_ms = (time.perf_counter() - self.start) * 1000.0
        record, self.held = self.held, None
        if record is not None:
            record.created = time.time()
            record.msecs = record.created % 1 * 1000
            AccessTiming.annotate(record, self.duration_ms)
            logging.getLogger(record.name).handle(record)


class AccessTiming(logging.Filter):
    """On the uvicorn.access logger: uvicorn logs a request as its response starts, without a
    duration. This holds that record until the response has been sent, then lets it go on
    with `duration_ms` and the request's parts as attributes (method, path, status, client,
    http_version). A record logged outside a request's task, or after it ended (uvicorn's own
    500 for an app that raised), goes on at once, with what is known."""

    @staticmethod
    def install():
        logger = logging.getLogger("uvicorn.access")
        if not any(isinstance(f, AccessTiming) for f in logger.filters):
            logger.addFilter(AccessTiming())

    @staticmethod
    def annotate(record, duration_ms):
        record.corral_access = True
        record.duration_ms = None if duration_ms is None else round(duration_ms, 3)
        parts = Internals.access_parts(record)
        if parts:
            record.client, record.method, record.path, record.http_version, record.status = parts

    def filter(self, record):
        if getattr(record, "corral_access", False):
            return True
        timing = CURRENT_REQUEST.get()
        if timing is not None and timing.duration_ms is None:
            timing.held = record
            return False
        self.annotate(record, timing.duration_ms if timing is not None else None)
        return True


# --------------------------------------------------------------------------------------------
# Logs: corral's line format for the workers (worker/PROTOCOL.md, "Logs")

LEVEL_NAMES = {logging.CRITICAL: "critical", logging.ERROR: "error", logging.WARNING: "warning",
               logging.INFO: "info", logging.DEBUG: "debug", 5: "trace"}
LOG_LEVELS = {name: level for level, name in LEVEL_NAMES.items()}
# sd-daemon(3) priorities, for lines that go to the journal.
PRIORITIES = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7, "trace": 7}
# The attributes every LogRecord has; any other is a field the app passed with `extra=`.
RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "color_message", "corral_access"}


SURROGATES = re.compile("[\ud800-\udfff]")


def level_name(levelno):
    if levelno in LEVEL_NAMES:
        return LEVEL_NAMES[levelno]
    return next((name for level, name in sorted(LEVEL_NAMES.items(), reverse=True)
                 if levelno >= level), "trace")


def rfc3339(created):
    """RFC 3339 in local time with milliseconds and the zone's offset, as corral writes it."""
    local = time.localtime(created)
    offset = local.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    return (time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{int(created % 1 * 1000):03d}"
            + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}")


def journal_fds():
    """The standard descriptors systemd connected to the journal ($JOURNAL_STREAM is
    "device:inode"; systemd.exec(5))."""
    try:
        device, inode = (int(part) for part in os.environ.get("JOURNAL_STREAM", "").split(":"))
    except ValueError:
        return set()
    found = set()
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (device, inode):
            found.add(fd)
    return found


class LineFormatter(logging.Formatter):
    """One record as corral formats its own lines: text
    `2026-12-03T07:14:41.292+00:00 info     worker-0[31516]: message` or one JSON object."""

    def __init__(self, who, json_lines, journal):
        super().__init__()
        self.who, self.json_lines, self.journal = who, json_lines, journal

    def format(self, record):
        message = record.getMessage()
        level = level_name(record.levelno)
        if getattr(record, "corral_access", False) and hasattr(record, "status"):
            message = self.access_text(record)
        failure = ""
        if record.exc_info:
            failure = self.formatException(record.exc_info)
        if record.stack_info:
            failure = (failure + "\n" if failure else "") + self.formatStack(record.stack_info)
        prefix = f"<{PRIORITIES[level]}>" if self.journal else ""
        if self.json_lines:
            return prefix + self.json_line(record, level, message, failure)
        text = f"{level:<8} {self.who}[{record.process}]: {message}"
        if failure:
            text += "\n" + failure
        return prefix + (text if self.journal else f"{rfc3339(record.created)} {text}")

    @staticmethod
    def access_text(record):
        try:
            phrase = http.HTTPStatus(record.status).phrase
        except ValueError:
            phrase = ""
        took = f" {record.duration_ms:.1f}ms" if record.duration_ms is not None else ""
        return (f'{record.client} - "{record.method} {record.path} HTTP/{record.http_version}" '
                f"{record.status} {phrase}".rstrip() + took)

    def json_line(self, record, level, message, failure):
        line = {"time": rfc3339(record.created), "level": level, "logger": record.name,
                "pid": record.process}
        if self.who.startswith("worker-"):
            line["worker"] = int(self.who[len("worker-"):])
        line["message"] = message
        if failure:
            line["traceback"] = failure
        for key, value in vars(record).items():
            if key not in RECORD_ATTRIBUTES and key not in line:
                line[key] = value if isinstance(value, (str, int, float, bool, type(None))) \
                    else repr(value)
        # ensure_ascii=False keeps text readable; a lone surrogate (undecodable bytes that
        # Python carries as surrogateescape) would not encode, so LineHandler replaces it.
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=repr)


class LineHandler(logging.Handler):
    """Writes each formatted record, newline included, to a descriptor in one write(2): the
    other workers and corral write to the same file, and a line written in pieces could be
    split by theirs."""

    def __init__(self, fd, formatter):
        super().__init__()
        self.fd = fd
        self.setFormatter(formatter)

    def emit(self, record):
        try:
            text = self.format(record) + "\n"
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError:
                # Bytes that were not UTF-8 (undecodable file names, say, which Python carries
                # as lone surrogates) become U+FFFD, as in corral's own lines.
                data = SURROGATES.sub("\ufffd", text).encode("utf-8", "replace")
            while data:
                data = data[os.write(self.fd, data):]
        except InterruptedError:
            pass
        except Exception:
            self.handleError(record)


class LineStream(io.TextIOBase):
    """sys.stdout or sys.stderr in JSON mode: each line the app prints becomes one record of
    the logger "stdout" or "stderr", so that every line on the worker's output is JSON."""

    def __init__(self, name, level, fd):
        super().__init__()
        self.logger, self.level, self.fd = logging.getLogger(name), level, fd
        self.pending = ""
        self.writing = False

    def writable(self):
        return True

    def fileno(self):
        return self.fd

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"

    def write(self, text):
        if self.writing:  # logging reporting its own failure: straight out
            os.write(self.fd, text.encode("utf-8", "replace"))
            return len(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.emit(line)
        return len(text)

    def flush(self):
        if self.pending:
            line, self.pending = self.pending, ""
            self.emit(line)

    def emit(self, line):
        self.writing = True
        try:
            self.logger.log(self.level, "%s", line)
        finally:
            self.writing = False


def setup_logging(settings, who):
    """Gives uvicorn's loggers and the app's (the root logger) corral's line format, unless the
    user passed --log-config, which uvicorn applied instead. Called once uvicorn.Config exists:
    it has set the levels and, with access_log off, silenced uvicorn.access."""
    AccessTiming.install()
    if settings.get("uvicorn", {}).get("log_config") is not None:
        return
    json_lines = settings.get("log_format") == "json"
    journal = journal_fds()
    out, err = (LineHandler(fd, LineFormatter(who, json_lines, fd in journal)) for fd in (1, 2))
    root = logging.getLogger()
    root.handlers = [err]
    root.setLevel(LOG_LEVELS.get(settings.get("uvicorn", {}).get("log_level", "info"),
                                 logging.INFO))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = [], True
    access = logging.getLogger("uvicorn.access")
    if settings.get("uvicorn", {}).get("access_log", True):
        # On stdout, as uvicorn writes it.
        access.handlers, access.propagate = [out], False
    sys.excepthook = log_uncaught
    threading.excepthook = lambda args: log_uncaught(args.exc_type, args.exc_value,
                                                     args.exc_traceback, args.thread)
    if json_lines:
        logging.captureWarnings(True)
        if not isinstance(sys.stdout, LineStream):
            sys.stdout = LineStream("stdout", logging.INFO, 1)
            sys.stderr = LineStream("stderr", logging.WARNING, 2)


def log_uncaught(exc_type, exc, tb, thread=None):
    """An exception nobody caught, as one record (its traceback included), not forty lines."""
    if issubclass(exc_type, KeyboardInterrupt) and thread is None:
        return sys.__excepthook__(exc_type, exc, tb)
    where = f" in thread {thread.name}" if thread is not None else ""
    if BootLogs.active is not None:
        BootLogs.active.release()  # held, this record would die with the worker unseen
    logging.getLogger("corral.worker").critical("uncaught exception%s", where,
                                                exc_info=(exc_type, exc, tb))


class LoadErrorApp:
    """What a --reload worker serves when the app failed to load: 503, and the error as text."""

    def __init__(self, text):
        self.body = ("corral: the app failed to load; it reloads at the next change of its "
                     f"files.\n\n{text}\n").encode("utf-8", "replace")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})
            return
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(self.body)).encode()),
                                (b"cache-control", b"no-store"),
                                (b"retry-after", b"1")]})
        await send({"type": "http.response.body", "body": self.body})


class _Catcher(logging.Handler):
    """Stands in for one logger's handlers while the worker boots."""

    def __init__(self, logger, sink):
        super().__init__()
        self.logger, self.sink = logger, sink

    def emit(self, record):
        self.sink.append((self.logger, record))


class BootLogs:
    """Holds the log records of uvicorn's loggers (and of the root logger, if it has handlers)
    while the worker boots. A boot error would otherwise be printed once per worker; corral
    prints it once, from BOOT_ERROR. Once the worker is ready, the records go out as usual."""

    NAMES = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    active = None  # the one capturing, if any

    def __init__(self):
        self.records = []  # (logger that caught it, record), in order
        self.saved = {}  # logger -> (its handlers, its catcher, its propagate)

    def capture(self):
        BootLogs.active = self
        for name in self.NAMES:
            logger = logging.getLogger(name)
            if logger.handlers:
                catcher = _Catcher(logger, self.records)
                self.saved[logger] = (logger.handlers, catcher, logger.propagate)
                # Not propagating makes each record caught exactly once, by the first logger
                # on its way up that had handlers, and nothing printed by a root handler the
                # app may add while it is imported.
                logger.handlers, logger.propagate = [catcher], False

    def release(self):
        """Puts the handlers back and sends the held records through them, in order."""
        BootLogs.active = None
        for logger, (handlers, catcher, propagate) in self.saved.items():
            if logger.handlers == [catcher]:  # else the app configured logging: keep its choice
                logger.handlers, logger.propagate = handlers, propagate
        for logger, record in self.records:
            replay(logger, record)
        self.records.clear()

    def text(self):
        """The held records as `LEVEL: message` lines with tracebacks; only warnings and errors
        when there are any, since the info lines around them add nothing to a boot error."""
        formatter = logging.Formatter("%(levelname)s: %(message)s")
        records = [record for _, record in self.records]
        serious = [record for record in records if record.levelno >= logging.WARNING]
        return "\n".join(formatter.format(record) for record in serious or records)


def replay(logger, record):
    """Passes a record to the handlers it would have reached from `logger` had it not been held
    (what Logger.callHandlers does)."""
    while logger is not None:
        for handler in logger.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)
        if not logger.propagate:
            break
        logger = logger.parent


def app_traceback(exc):
    """The traceback of exc without its leading frames in this shim, uvicorn, importlib and
    asyncio, so that it starts where the app's code does (all of it if no frame is the app's)."""
    plumbing = ["<string>", "<frozen "]
    for name in ("uvicorn", "importlib", "asyncio"):
        module = sys.modules.get(name)
        if getattr(module, "__file__", None):
            plumbing.append(os.path.dirname(module.__file__) + os.sep)
    error = traceback.TracebackException.from_exception(exc)
    frames = list(error.stack)
    first = next((i for i, f in enumerate(frames) if not f.filename.startswith(tuple(plumbing))),
                 0)
    error.stack = traceback.StackSummary.from_list(frames[first:])
    return "".join(error.format())


class Worker:
    """Boots the server, says READY once it serves, then sends heartbeats."""

    def __init__(self, internals, settings, control, balancer=None):
        """Raises ConfigError if uvicorn rejects the settings or lacks an internal."""
        self.internals = internals
        self.control = control
        self.settings = settings
        self.heartbeat = settings.get("heartbeat_interval") or 0
        self.max_requests = settings.get("max_requests")
        self.reload = bool(settings.get("reload"))
        self.modules_before = set(sys.modules)  # a forked worker's include what the template had
        self.load_failed = False
        self.ready = False
        self.requests = Requests()
        self.logs = BootLogs()
        self.config = internals.make_config(settings, self.notify)  # configures logging
        setup_logging(settings, f"worker-{settings.get('slot', 0)}")
        self.logs.capture()
        self.server = internals.make_server(self.config)
        if balancer is not None:
            balancer.connections = self.server.server_state.connections
            self.server.balancer = balancer

    async def notify(self):
        # uvicorn awaits this from its main loop once the server serves.
        if self.ready or not self.server.serving:
            return
        self.ready = True
        self.logs.release()
        if not self.control.send("READY"):
            # corral gave up on this worker while it booted (a worker template that answered
            # too late): it must not serve unsupervised, so it drains at once.
            self.server.drain()
            return
        loop = asyncio.get_running_loop()
        if self.heartbeat > 0:
            self.beat(loop)
        if self.max_requests:
            self.count_requests(loop)
        self.report_requests(loop, (0, 0))
        if self.reload and not self.load_failed:
            self.report_modules()

    def report_modules(self):
        """--reload: the modules the app imported from outside the watched folders (its
        libraries: fastapi, pydantic...) as a MODULES message, so that corral's worker template
        imports them beforehand: a worker forked from it then imports only the app's own code."""
        watched = tuple(os.path.join(os.path.realpath(folder), "")
                        for folder in self.settings.get("reload_dirs", []))
        names = []
        for name, module in list(sys.modules.items()):
            if name in self.modules_before or name == "__main__":
                continue
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and os.path.realpath(path).startswith(watched):
                continue  # the app's own code: imported anew by every worker
            names.append(name)
        if names:
            self.control.send("MODULES", "\n".join(sorted(names)), block=False)

    def beat(self, loop):
        # A timer on the event loop: a blocked loop stops the heartbeats, which is how corral
        # finds a hung worker.
        self.control.send("WATCHDOG", block=False)
        loop.call_later(self.heartbeat, self.beat, loop)

    def count_requests(self, loop):
        # At its limit the worker asks corral for a replacement and keeps serving: corral stops
        # it once the replacement is READY, so no request waits for a worker to boot.
        served = self.server.requests_served
        if served >= self.max_requests:
            self.control.send("RECYCLE", f"served {served} requests (limit {self.max_requests})")
        else:
            loop.call_later(REQUEST_CHECK, self.count_requests, loop)

    def report_requests(self, loop, reported):
        # A datagram only when the figures changed: an idle worker sends nothing.
        now = (self.requests.served, self.requests.in_flight)
        if now != reported:
            self.control.send("REQUESTS", f"{now[0]} {now[1]}", block=False)
        loop.call_later(REQUEST_REPORT, self.report_requests, loop, now)

    def run(self, socks):
        """Imports the app and serves until told to stop; returns the exit status. Raises
        ConfigError if uvicorn lacks an internal that shows only now."""
        server = self.server
        try:
            self.internals.load_app(self.config, lambda app: WorkerApp(app, server, self.requests))
            self.internals.run(server, socks)
            if self.ready:  # the last figures, which the periodic report would miss
                self.control.send("REQUESTS", f"{self.requests.served} {self.requests.in_flight}")
        except ConfigError:
            raise
        except BaseException as exc:
            if self.ready:
                raise  # a crash after READY is no boot failure: Python reports it as usual
            failure = exc
        else:
            if server.serving:
                return 0
            failure = None  # lifespan startup failed; uvicorn logged why
        if server.stopping:
            return 0  # asked to stop while booting: not a boot failure
        if self.reload:
            return self.serve_load_error(self.boot_error(failure), socks)
        self.control.fail("BOOT_ERROR", self.boot_error(failure), EXIT_BOOT_ERROR)

    def serve_load_error(self, text, socks):
        """--reload: the app failed to import or to start, so this worker answers every request
        with a 503 saying why (a developer looks at the browser) until corral replaces it at the
        next change. corral prints the error once, from LOAD_ERROR."""
        self.load_failed = True
        self.control.send("LOAD_ERROR", clip(text, MAX_DATAGRAM - len("LOAD_ERROR=")))
        self.logs.records.clear()  # what corral prints; released, they would say it again
        uvicorn_settings = {**self.settings.get("uvicorn", {}), "lifespan": "off"}
        settings = {**self.settings, "app": LoadErrorApp(text), "factory": False,
                    "uvicorn": uvicorn_settings}
        self.config = self.internals.make_config(settings, self.notify)
        self.server = self.internals.make_server(self.config)
        self.internals.load_app(self.config, lambda app: WorkerApp(app, self.server, self.requests))
        self.internals.run(self.server, socks)
        return 0

    def boot_error(self, exc):
        parts = [self.logs.text()]
        if isinstance(exc, SystemExit):
            # uvicorn logged its reason before exiting; an app's sys.exit("why") carries its own.
            if isinstance(exc.code, str):
                parts.append(exc.code)
            elif not parts[0]:
                parts.append(f"the app called sys.exit({exc.code!r}) while starting")
        elif exc is not None:
            parts.append(app_traceback(exc))
        text = "\n".join(part.rstrip("\n") for part in parts if part)
        return text or "the app did not start, and logged no reason"


class Template:
    """The worker template of --start-method forkserver: an interpreter that has imported uvicorn
    and what uvicorn.Config.load() imports for these settings (protocols, loop, lifespan), and
    forks a worker whenever corral asks. A forked worker skips that boot and imports the app
    itself, as a spawned one does, so that a reload still re-imports the app's code.

    A request is one datagram, the worker's settings as JSON, carrying the worker's end of its
    control channel (SCM_RIGHTS); the answer is `SPAWNED=<pid>` or `SPAWN_ERROR=<text>`. The
    worker is forked twice so that it is corral's child (corral is its subreaper, or PID 1),
    reaped by corral like any other, and then made as clean as a spawned worker: its own process
    group, PR_SET_PDEATHSIG, no signal blocked, no descriptor but stdio, the listening sockets
    and its channel."""

    def __init__(self, settings, control):
        self.control = control
        self.corral = os.getppid()
        # What a forked worker keeps of the template's descriptors, besides stdio and its channel.
        self.inherited = list(settings.get("sockets", []))
        if "scoreboard" in settings:
            self.inherited.append(settings["scoreboard"])
        try:
            import ctypes
            self.prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (ImportError, OSError, AttributeError) as exc:
            control.fail("CONFIG_ERROR", f"no prctl for forked workers: {exc}", EXIT_CONFIG_ERROR)
        retitle(f"corral template: {settings.get('app', '')}", TEMPLATE_NAME)
        Internals(import_uvicorn(control)).warm_up(settings)
        setup_logging(settings, "template")
        self.preload(settings.get("preload", ()))
        if settings.get("preload_app"):
            self.preload_app(settings)
        if settings.get("reload"):
            self.send_imports()

    def preload_app(self, settings):
        """--preload: imports APP's module here, so that every worker forked from this template
        shares its pages rather than importing its own copy; lifespan startup still runs in
        each worker, after the fork. A module that fails to import is left to the workers,
        which report the error once (BOOT_ERROR, or reload_error on a SIGHUP). Threads started
        by the import do not survive the fork, and a lock one held stays locked in the worker:
        corral says so, naming them, and forks anyway, as the user asked."""
        module = str(settings.get("app", "")).split(":", 1)[0]
        sys.path.insert(0, os.path.abspath(settings.get("app_dir", ".")))
        try:
            importlib.import_module(module)
        except BaseException:  # noqa: BLE001 - the workers import it again and say why
            return
        threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if threads:
            self.control.send("WARNING", f"--preload: importing {module} started "
                              f"{len(threads)} thread(s) ({', '.join(threads)}), which the "
                              "forked workers will not have; start them in the app's lifespan "
                              "startup, or run without --preload")

    def preload(self, names):
        """--reload: imports the libraries the app's workers reported (MODULES), so that the
        workers forked from here do not import them again at every change. A library that
        starts a thread as it is imported would leave the forked workers without it: the
        template then gives up, and workers start afresh."""
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException:  # an import that fails here fails in the worker, reported
                pass
        if threading.active_count() > 1:
            self.control.fail("STATUS", "importing the app's libraries started a thread; not "
                              "forking workers from it", 0)

    def send_imports(self):
        """--reload: the real paths of the source files of every module imported so far, as
        IMPORTS messages of up to IMPORTS_CHUNK bytes; corral starts a new template when one
        of them changes, since the workers it forks would not import it again."""
        paths = sorted({os.path.realpath(path) for path in
                        (getattr(module, "__file__", None) for module in list(sys.modules.values()))
                        if isinstance(path, str)})
        chunk, size = [], 0
        for path in paths:
            length = len(path.encode("utf-8", "replace")) + 1
            if length > IMPORTS_CHUNK:
                continue  # no such path in practice; the check would only miss that file
            if size + length > IMPORTS_CHUNK:
                self.control.send("IMPORTS", "\n".join(chunk))
                chunk, size = [], 0
            chunk.append(path)
            size += length
        if chunk:
            self.control.send("IMPORTS", "\n".join(chunk))

    def serve(self):
        """Forks workers until corral closes the channel; returns (settings, control) in each
        worker."""
        # Objects that exist now stay out of the collector's reach, so that a collection in a
        # worker does not write to (and so copy) the pages it shares with the template.
        gc.collect()
        gc.freeze()
        self.control.send("READY")
        while True:
            settings, fd = self.receive()
            try:
                pid = self.fork()
            except OSError as exc:
                os.close(fd)
                self.control.send("SPAWN_ERROR", str(exc))
                continue
            if pid == 0:
                self.become_worker(fd)
                return settings, Control(fd)
            os.close(fd)
            self.control.send("SPAWNED", str(pid))

    def receive(self):
        """The next request: (settings, control fd). Exits once corral has closed the channel."""
        while True:
            data, ancillary, _, _ = self.control.sock.recvmsg(
                MAX_DATAGRAM, socket.CMSG_SPACE(array.array("i").itemsize))
            if not data:
                sys.exit(0)
            fds = array.array("i")
            for level, kind, payload in ancillary:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
            try:
                settings = json.loads(data)
                if len(fds) == 1:
                    return settings, fds[0]
                error = f"a request carries one descriptor, not {len(fds)}"
            except ValueError as exc:
                error = f"the settings are not JSON: {exc}"
            for fd in fds:
                os.close(fd)
            self.control.send("SPAWN_ERROR", error)

    def fork(self):
        """The new worker's pid in the template; 0 in the worker."""
        pipe_in, pipe_out = os.pipe()
        middle = os.fork()
        if middle == 0:  # forks the worker and exits at once, so that corral adopts the worker
            os.close(pipe_in)
            try:
                pid = os.fork()
            except BaseException:
                os._exit(1)
            if pid == 0:
                os.close(pipe_out)
                return 0
            try:
                os.write(pipe_out, str(pid).encode())
            finally:
                os._exit(0)
        os.close(pipe_out)
        with os.fdopen(pipe_in, "rb") as pipe:
            answer = pipe.read()
        os.waitpid(middle, 0)
        if not answer:
            raise OSError("the worker could not be forked")
        return int(answer)

    def become_worker(self, fd):
        """Makes a forked worker as clean as a spawned one (see the class docstring). corral
        does the same for the workers it starts itself, between fork and exec (ChildSetup, in
        its posix spawner); a change to one belongs in the other, and
        test_forkserver.py::test_forked_and_spawned_workers_start_equally_clean compares
        them."""
        deadline = time.monotonic() + ADOPTION_WAIT
        while os.getppid() != self.corral:  # the middle process is on its way out
            if time.monotonic() > deadline:
                print(f"corral worker: pid {os.getpid()} was not adopted by corral (pid "
                      f"{self.corral}); --start-method spawn avoids this", file=sys.stderr)
                os._exit(1)
            time.sleep(0.0002)
        # Only now: the signal is tied to the parent at the time it is set. If corral died in
        # between, nothing would send it, hence the second look.
        if self.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != self.corral:
            os._exit(1)
        os.setpgid(0, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        self.control.sock.close()
        start = 0
        for keep in sorted({0, 1, 2, fd, *self.inherited}):
            if start < keep:  # closerange(n, n) would close all from n on (CPython 3.11)
                os.closerange(start, keep)
            start = keep + 1
        os.closerange(start, os.sysconf("SC_OPEN_MAX"))


def retitle(title, name):
    """Shows this process as `name` (its comm: ps -o comm, top, pgrep) and `title` (its command
    line: ps aux, top -c, htop), rather than as python3 with the whole shim for arguments."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(PR_SET_NAME, name)
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        # arg_start and arg_end: fields 48 and 49 of proc(5), where the state is field 3.
        start, end = int(fields[45]), int(fields[46])
    except (ImportError, OSError, AttributeError, ValueError, IndexError):
        return  # no ctypes or no /proc: the title is a convenience
    size = end - start
    if start == 0 or size < 3:
        return
    text = title.encode("utf-8", "replace")[:size - 2].decode("utf-8", "ignore").encode()
    # The argument area (argv's strings, which the interpreter has copied by now) gets the
    # title, NULs, and a last byte that is not NUL: the kernel then takes the area for a title
    # set by setproctitle(3) and shows it up to its first NUL as the command line
    # (fs/proc/base.c, get_mm_cmdline and get_mm_proctitle; Linux 4.18 had dropped that case,
    # commit d26d0cd97c88 "/proc/<pid>/cmdline: add back the setproctitle() special case"
    # restored it in 2019). Otherwise it would show the title followed by empty arguments.
    # A forked worker inherits the template's area, title included, and retitles its copy.
    ctypes.memmove(start, text + bytes(size - len(text) - 1) + b" ", size)


def serve(settings, control):
    """Runs one worker to the end (sys.exit with its status)."""
    retitle(f"corral worker {settings.get('slot', '?')}: {settings.get('app', '')}", WORKER_NAME)
    socks = open_sockets(settings.get("sockets", []), control)
    uvicorn = import_uvicorn(control)
    sys.path.insert(0, os.path.abspath(settings.get("app_dir", ".")))
    internals = Internals(uvicorn)
    balancer = None
    if internals.accepts_one_per_wakeup(settings):
        scoreboard = Scoreboard.open(settings.get("scoreboard"))
        if scoreboard is not None:
            balancer = Balancer(scoreboard)
            for sock in socks:
                sock.balancer = balancer
    try:
        internals.check()
        worker = Worker(internals, settings, control, balancer)
        control.send("STATUS", f"booting {settings['app']} with uvicorn {uvicorn.__version__} "
                               f"on Python {sys.version.split()[0]}")
        status = worker.run(socks)
    except ConfigError as exc:
        control.fail("CONFIG_ERROR", str(exc), EXIT_CONFIG_ERROR)
    leave(status)


def leave(status):
    """Ends the worker as the interpreter would, but for its teardown: the app's non-daemon
    threads are joined and its atexit handlers run (flushing logs and exporters), then the
    process exits. The teardown would free every object one by one, which in a forked worker
    means writing to, and so copying, the pages it shares with the template: CPU taken from the
    workers serving beside it, for memory the kernel frees at exit anyway. multiprocessing ends
    its forked children with os._exit too, without even the atexit handlers."""
    if not Internals.finish_interpreter():
        sys.exit(status)  # an interpreter without the means: the usual way
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(status)


def main():
    faulthandler.enable()  # corral's SIGABRT to a hung worker then dumps every thread's stack
    settings, control_fd, role = read_settings()
    # Until uvicorn installs its handlers, a stop request simply ends the worker: nothing is
    # served yet, and an app's `except BaseException` cannot swallow a KeyboardInterrupt.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    try:
        control = Control(control_fd)
    except OSError as exc:
        die(f"CORRAL_CONTROL_FD {control_fd} is no usable control channel: {exc}")
    if role == "check":
        check(settings, control)
    if role == "template":
        # Returns only in each worker it forks, with that worker's settings and channel.
        settings, control = Template(settings, control).serve()
    serve(settings, control)


if __name__ == "__main__":
    main()
