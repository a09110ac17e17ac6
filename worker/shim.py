# corral worker
"""One corral worker: serves an ASGI app with uvicorn on the sockets corral bound.

corral runs this as `python -c <this source>` (there is no __file__) with its settings in
$CORRAL_WORKER_SETTINGS and a SOCK_SEQPACKET control channel; worker/PROTOCOL.md is the contract.
Only the standard library and uvicorn's public API are used, so that it runs under every uvicorn
from Debian bookworm's 0.17 to current releases.

Exit status: 0 after serving (or when stopped by a signal while booting), 2 after CONFIG_ERROR,
3 after BOOT_ERROR. A worker may also die by the signal that stopped it: SIGTERM/SIGINT before
uvicorn handles them, or re-raised by uvicorn >= 0.29 after a graceful shutdown; SIGABRT (sent
by corral to a hung worker) after faulthandler has dumped every thread's stack to stderr.
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
import faulthandler
import gc
import json
import logging
import os
import signal
import socket
import threading
import time
import traceback

EXIT_CONFIG_ERROR = 2
EXIT_BOOT_ERROR = 3
MAX_DATAGRAM = 32 * 1024
PYTHON = sys.executable or "this Python"
# uvicorn calls callback_notify once, right after startup (its last_notified starts at 0), then
# only every timeout_notify seconds on a one-second tick. The first call is the READY edge; the
# heartbeat runs on its own timer on the event loop, so it keeps time below a second. "Never
# again" must be a finite number: infinity would suppress the first call too.
NO_MORE_NOTIFY = 365 * 24 * 3600.0
# How long a stopping worker waits, no longer accepting, before uvicorn closes the connections
# that have not sent a request yet (see WorkerServer.shutdown).
ACCEPTED_LINGER = 0.5
# How often the request count is compared with max_requests.
REQUEST_CHECK = 0.1
# How long a forked worker waits for corral to adopt it (the process between them exits at once).
ADOPTION_WAIT = 5.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_NAME = 15
TEMPLATE_NAME = b"corral-template"  # at most 15 bytes, the kernel's limit for a process name


def die(message):
    """For corral's own mistakes, when there is no control channel to report them on."""
    print(f"corral worker: {message}", file=sys.stderr)
    sys.exit(EXIT_CONFIG_ERROR)


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
    raw = os.environ.pop("CORRAL_WORKER_SETTINGS", None)  # the app must not see it
    if raw is None:
        die("CORRAL_WORKER_SETTINGS is not set; this program is run by corral")
    try:
        settings = json.loads(raw)
    except ValueError as exc:
        die(f"CORRAL_WORKER_SETTINGS is not valid JSON: {exc}")
    # The spawner picks the control channel's fd, so it comes beside the settings.
    control_fd = os.environ.pop("CORRAL_CONTROL_FD", None)
    if control_fd is not None:
        settings["control_fd"] = int(control_fd) if control_fd.isdigit() else control_fd
    # The worker template (--start-method forkserver) gets slot 0's settings.
    settings["template"] = os.environ.pop("CORRAL_WORKER_ROLE", "") == "template"
    return settings


def open_sockets(fds, control):
    """Socket objects for the listening fds corral passed, with their real family: unlike
    uvicorn's fd= option, which labels every fd AF_UNIX, so asyncio would not set TCP_NODELAY."""
    socks = []
    for fd in fds:
        try:
            os.set_inheritable(fd, False)
            socks.append(socket.socket(fileno=fd))
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


def make_config(uvicorn, settings, worker, control):
    try:
        return uvicorn.Config(
            settings["app"],
            factory=settings.get("factory", False),
            callback_notify=worker.notify,
            timeout_notify=NO_MORE_NOTIFY,
            **settings.get("uvicorn", {}))
    except Exception as exc:
        where = f"uvicorn {uvicorn.__version__} in {PYTHON}"
        if isinstance(exc, TypeError) and "keyword argument" in str(exc):
            message = (f"{where} does not support an option corral passed ({exc}); "
                       "upgrade uvicorn or leave that option unset")
        else:
            message = f"{where} rejected corral's settings: {type(exc).__name__}: {exc}"
        control.fail("CONFIG_ERROR", message, EXIT_CONFIG_ERROR)


def make_server(uvicorn, config):
    class WorkerServer(uvicorn.Server):
        # uvicorn's own exit flag is also set by a failed lifespan startup; this one tells a
        # stop requested by corral (or ^C) apart from a boot failure, in every uvicorn version.
        corral_signal = None

        def handle_exit(self, sig, frame):
            self.corral_signal = sig
            super().handle_exit(sig, frame)

        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started and self.corral_signal is not None:
                # Stopped while its listeners were being created: uvicorn 0.17 would return
                # without a shutdown and drop what they had accepted. Shut down properly, once.
                await self.shutdown(sockets=sockets)
                self.started = False

        async def shutdown(self, sockets=None):
            # uvicorn's shutdown closes every connection that has no request in progress, and
            # that includes one accepted a moment ago whose request bytes are still on the way:
            # its client would see the connection close unanswered. Stop accepting first, give
            # such connections a moment to deliver their request, then shut down as usual.
            for server in getattr(self, "servers", None) or []:
                server.close()
            if self.server_state.connections:
                await asyncio.sleep(ACCEPTED_LINGER)
            await super().shutdown(sockets=sockets)

    return WorkerServer(config)


class CloseWhenStopping:
    """Wraps the app so that, once the worker is told to stop, every response asks its client
    to close the connection. uvicorn closes a connection after a response with `Connection:
    close` (its docs, server-behavior.md), so a client that reuses its keep-alive connection
    while the worker drains gets its answer and moves to another worker. Otherwise the
    connection would stay open and idle until uvicorn's shutdown closes it, and a client that
    sends its next request just then finds it closed under it (the keep-alive race)."""

    CLOSE = (b"connection", b"close")

    def __init__(self, app, server):
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_closing(message):
            if message["type"] == "http.response.start" and self.server.corral_signal is not None:
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"connection" for name, _ in headers):
                    message = {**message, "headers": headers + [self.CLOSE]}
            await send(message)

        return await self.app(scope, receive, send_closing)


class Listeners(list):
    """The listening sockets as handed to uvicorn, which goes through them to start accepting
    once lifespan startup is done. A worker told to stop while it booted finds none: taking
    connections from the shared queue only to quit without answering them would reset them,
    where any other worker would serve them."""

    def __init__(self, socks, server):
        super().__init__(socks)
        self.server = server

    def __iter__(self):
        if self.server.corral_signal is not None and not self.server.started:
            return iter(())
        return super().__iter__()


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

    def __init__(self):
        self.records = []  # (logger that caught it, record), in order
        self.saved = {}  # logger -> (its handlers, its catcher, its propagate)

    def capture(self):
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

    def __init__(self, control, heartbeat, max_requests):
        self.control = control
        self.heartbeat = heartbeat
        self.max_requests = max_requests
        self.logs = BootLogs()
        self.config = self.server = None  # set once uvicorn is imported
        self.ready = False

    async def notify(self):
        # uvicorn awaits this from its main loop once the server serves.
        if self.ready or self.server is None or not self.server.started:
            return
        self.ready = True
        self.logs.release()
        if not self.control.send("READY"):
            # corral gave up on this worker while it booted (a worker template that answered
            # too late): it must not serve unsupervised, so it drains at once.
            self.server.should_exit = True
            return
        loop = asyncio.get_running_loop()
        if self.heartbeat > 0:
            self.beat(loop)
        if self.max_requests:
            self.count_requests(loop)

    def beat(self, loop):
        # A timer on the event loop: a blocked loop stops the heartbeats, which is how corral
        # finds a hung worker.
        self.control.send("WATCHDOG", block=False)
        loop.call_later(self.heartbeat, self.beat, loop)

    def count_requests(self, loop):
        # At its limit the worker asks corral for a replacement and keeps serving: corral stops
        # it once the replacement is READY, so no request waits for a worker to boot.
        served = self.server.server_state.total_requests
        if served >= self.max_requests:
            self.control.send("RECYCLE", f"served {served} requests (limit {self.max_requests})")
        else:
            loop.call_later(REQUEST_CHECK, self.count_requests, loop)

    def run(self, socks):
        """Imports the app and serves until told to stop; returns the exit status."""
        server = self.server
        try:
            self.config.load()  # uvicorn logs then sys.exit()s on some import errors
            # Every connection uvicorn makes serves config.loaded_app (0.17 to current).
            self.config.loaded_app = CloseWhenStopping(self.config.loaded_app, server)
            # Returns with started False if lifespan startup failed.
            server.run(sockets=Listeners(socks, server))
        except BaseException as exc:
            if self.ready:
                raise  # a crash after READY is no boot failure: Python reports it as usual
            failure = exc
        else:
            if server.started:
                return 0
            failure = None  # lifespan startup failed; uvicorn logged why
        if server.corral_signal is not None:
            return 0  # asked to stop while booting: not a boot failure
        self.control.fail("BOOT_ERROR", self.boot_error(failure), EXIT_BOOT_ERROR)

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
    forks a worker whenever corral asks. A forked worker skips that boot, about a tenth of a
    CPU second, and imports the app itself, as a spawned one does, so that a reload still
    re-imports the app's code.

    A request is one datagram, the worker's settings as JSON, carrying the worker's end of its
    control channel (SCM_RIGHTS); the answer is `SPAWNED=<pid>` or `SPAWN_ERROR=<text>`. The
    worker is forked twice so that it is corral's child (corral is its subreaper, or PID 1),
    reaped by corral like any other, and then made as clean as a spawned worker: its own process
    group, PR_SET_PDEATHSIG, no signal blocked, no descriptor but stdio, the listening sockets
    and its channel."""

    def __init__(self, settings, control):
        self.control = control
        self.corral = os.getppid()
        self.listeners = settings.get("sockets", [])
        try:
            import ctypes
            self.prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (ImportError, OSError, AttributeError) as exc:
            control.fail("CONFIG_ERROR", f"no prctl for forked workers: {exc}", EXIT_CONFIG_ERROR)
        # Named apart from the workers in ps and top; a worker takes the interpreter's name back.
        try:
            with open("/proc/self/comm", "rb") as comm:
                self.worker_name = comm.read().strip()
        except OSError:
            self.worker_name = None  # no /proc: keep the interpreter's name
        else:
            self.prctl(PR_SET_NAME, TEMPLATE_NAME)
        uvicorn = import_uvicorn(control)
        try:
            uvicorn.Config(placeholder_app, **settings.get("uvicorn", {})).load()
        except Exception:
            pass  # each worker reports what is wrong with its settings itself

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
        """Makes a forked worker as clean as a spawned one (see the class docstring)."""
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
        if self.worker_name:
            self.prctl(PR_SET_NAME, self.worker_name)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        self.control.sock.close()
        start = 0
        for keep in sorted({0, 1, 2, fd, *self.listeners}):
            if start < keep:  # closerange(n, n) would close all from n on (CPython 3.11)
                os.closerange(start, keep)
            start = keep + 1
        os.closerange(start, os.sysconf("SC_OPEN_MAX"))


async def placeholder_app(scope, receive, send):
    """What the template gives uvicorn.Config.load() to import everything else; never called."""


def serve(settings, control):
    """Runs one worker to the end (sys.exit with its status)."""
    socks = open_sockets(settings.get("sockets", []), control)
    uvicorn = import_uvicorn(control)
    sys.path.insert(0, os.path.abspath(settings.get("app_dir", ".")))

    worker = Worker(control, settings.get("heartbeat_interval") or 0,
                    settings.get("max_requests"))
    worker.config = make_config(uvicorn, settings, worker, control)  # configures logging
    worker.logs.capture()
    worker.server = make_server(uvicorn, worker.config)
    control.send("STATUS", f"booting {settings['app']} with uvicorn {uvicorn.__version__} "
                           f"on Python {sys.version.split()[0]}")
    leave(worker.run(socks))


def leave(status):
    """Ends the worker as the interpreter would, but for its teardown: the app's non-daemon
    threads are joined and its atexit handlers run (flushing logs and exporters), then the
    process exits. The teardown frees every object one by one, which in a forked worker means
    writing to, and so copying, the pages it shares with the template: 15-20 ms of CPU taken
    from the workers serving beside it, for memory the kernel frees at exit anyway (measured
    with bench/app.py and uvicorn 0.17.6). multiprocessing ends its forked children with
    os._exit too, without even the atexit handlers."""
    shutdown_threads = getattr(threading, "_shutdown", None)
    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if shutdown_threads is None or run_exit_functions is None:
        sys.exit(status)  # an interpreter without these: the usual way
    shutdown_threads()
    run_exit_functions()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(status)


def main():
    faulthandler.enable()  # corral's SIGABRT to a hung worker then dumps every thread's stack
    settings = read_settings()
    # Until uvicorn installs its handlers, a stop request simply ends the worker: nothing is
    # served yet, and an app's `except BaseException` cannot swallow a KeyboardInterrupt.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        control = Control(settings["control_fd"])
    except (KeyError, TypeError, OSError) as exc:
        die(f"no usable control channel in the settings: {exc!r}")
    if settings.get("template"):
        # Returns only in each worker it forks, with that worker's settings and channel.
        settings, control = Template(settings, control).serve()
    serve(settings, control)


if __name__ == "__main__":
    main()
