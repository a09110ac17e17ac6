"""gunicorn's and uvicorn's flags on corral: the synonyms corral accepts (each checked by what it
does), and the uvicorn options corral passes through: TLS with a certificate made here, WebSockets
and their limits, response headers, h11's buffer. Every test runs on both uvicorn passes; an
option the installed uvicorn lacks must be refused with the release that has it."""

import base64
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import CORRAL_BIN, EVENT_DEADLINE, PYTHON, InflightRequest, http_get, wait_until
from test_config import one_error, output, uvicorn_version


def refused_by_the_workers(c, needle: str) -> str:
    """Asserts that corral started, and stopped with exit 2 because its workers' uvicorn refused
    an option: the reason logged once, naming `needle`."""
    print(f"exit code {c.returncode}; output:\n{output(c)}")
    assert c.returncode == 2
    found = c.find_log(re.escape(needle))
    assert len(found) == 1, f"{needle!r} logged {len(found)} times"
    assert "upgrade uvicorn" in found[0].string
    return found[0].string

# --------------------------------------------------------------------------------------------
# gunicorn's and uvicorn's names for corral's options


def test_host_and_port_make_one_bind(corral):
    c = corral.start("--host", "127.0.0.1", "--port", "0", bind=None)
    assert len(c.find_log(r"listening on ")) == 1
    assert c.get("/").status == 200


def test_port_alone_binds_loopback_as_uvicorn_does(corral):
    c = corral.start("--port", "0", bind=None)
    listening = c.find_log(r"listening on (\S+)")
    assert [m[1] for m in listening] == [f"http://127.0.0.1:{c.port}"]


def test_uds_serves_on_a_unix_socket(corral, tmp_path):
    path = str(tmp_path / "app.sock")
    c = corral.start("--uds", path, bind=None)
    c.wait_for_log(rf"listening on unix:{re.escape(path)}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


def test_fd_serves_on_an_inherited_socket(corral):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        c = corral.start("--fd", str(listener.fileno()), bind=None, pass_fds=(listener.fileno(),))
        c.wait_for_log(rf"listening on http://127\.0\.0\.1:{port} \(fd://{listener.fileno()}\)")
        assert http_get(port, "/").status == 200
    finally:
        listener.close()


def keep_alive_exchange(sock: socket.socket) -> bytes:
    """One request on a kept-alive connection; the whole response (read to its Content-Length,
    so that nothing is left for the next), or b"" if the server had closed the connection."""
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)[1])
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return b""
            body += chunk
        return data
    except (ConnectionResetError, BrokenPipeError):
        return b""


def test_keep_alive_is_the_keep_alive_timeout(corral):
    # uvicorn's default (5 s) would close the idle connection before the second request;
    # gunicorn's --keep-alive 30 keeps it open.
    c = corral.start("--keep-alive", "30", workers=1)
    with socket.create_connection(("127.0.0.1", c.port), timeout=10) as sock:
        assert keep_alive_exchange(sock).startswith(b"HTTP/1.1 200")
        time.sleep(6.5)
        assert keep_alive_exchange(sock).startswith(b"HTTP/1.1 200")


def test_timeout_graceful_shutdown_is_the_graceful_timeout(corral):
    c = corral.start("--timeout-graceful-shutdown", "2", workers=1)
    request = InflightRequest(c.port, "/sleep?s=60")
    c.wait_taken(request)
    c.send_signal(signal.SIGTERM)
    c.wait_for_log(r"drain: 1 worker finishing in-flight requests, deadline 2s")
    assert c.wait_exit() == 0
    request.join(EVENT_DEADLINE)
    assert request.status is None, "the request outlived the graceful timeout"


def _ignore(call):
    try:
        call()
    except (OSError, http.client.HTTPException):
        pass


def test_limit_max_requests_recycles_workers(corral):
    c = corral.start("--limit-max-requests", "3", workers=1)
    first = c.worker_pids()[0]
    for _ in range(4):
        assert c.get("/").status == 200
    c.wait_for_log(rf"worker 0 exited \(pid {first}\): exit code 0 \(recycled\)")


def test_timeout_worker_healthcheck_is_the_heartbeat_timeout(corral):
    c = corral.start("--timeout-worker-healthcheck", "2", workers=1)
    victim = c.worker_pids()[0]
    threading.Thread(target=lambda: _ignore(lambda: c.get("/block?s=30", timeout=60)),
                     daemon=True).start()
    c.wait_for_log(rf"worker 0 hung \(pid {victim}\): no heartbeat for 2s")


def test_access_logfile_dash_logs_requests_to_stdout(corral):
    # The environment turns the access log off; gunicorn's flag on the command line wins.
    c = corral.start("--access-logfile", "-", workers=1, env={"CORRAL_ACCESS_LOG": "false"})
    assert c.get("/?access-check").status == 200
    wait_until(lambda: '"GET /?access-check HTTP/1.1" 200' in c.stdout_text(), EVENT_DEADLINE,
               "the access log line on stdout")
    d = corral.start(workers=1, env={"CORRAL_ACCESS_LOG": "false"})
    assert d.get("/?not-logged").status == 200
    assert c.get("/?access-check-2").status == 200
    wait_until(lambda: "access-check-2" in c.stdout_text(), EVENT_DEADLINE, "the second line")
    assert "not-logged" not in d.stdout_text() + d.stderr_text()


@pytest.mark.parametrize("flag", ["--access-logfile", "--error-logfile"])
def test_log_files_other_than_stdio_are_refused(corral, flag):
    c = corral.run(flag, "/var/log/app.log", timeout=15)
    one_error(c, f"{flag} '/var/log/app.log'", "pass '-'")


def test_error_logfile_dash_is_accepted(corral):
    c = corral.start("--error-logfile", "-", workers=1)
    assert c.get("/").status == 200


def test_worker_tmp_dir_is_accepted_with_an_info_line(corral):
    c = corral.start("--worker-tmp-dir", "/dev/shm", workers=1)
    infos = c.find_log(r"--worker-tmp-dir /dev/shm is not needed, and ignored")
    assert len(infos) == 1
    assert [e.level for e in c.entries() if "worker-tmp-dir" in e.msg] == ["info"]


def test_chdir_moves_corral_and_its_workers(corral, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.py").write_text(
        "import os\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    body = os.getcwd().encode()\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': body})\n")
    c = corral.start(raw_args=[CORRAL_BIN, "--chdir", str(site), "-p", "corral.pid",
                               "--python", PYTHON, "-w", "1", "-b", "127.0.0.1:0",
                               "--admin-bind", "127.0.0.1:0", "--lifespan", "off", "hello:app"],
                     workers=1)
    assert c.get("/").text == str(site)
    assert (site / "corral.pid").read_text().strip() == str(c.pid)


# --------------------------------------------------------------------------------------------
# TLS, with a self-signed certificate made here


@pytest.fixture
def tls_dir():
    """A folder anyone may read (workers may run as nobody) with server.pem/server-key.pem, an
    encrypted copy of the key (server-key-encrypted.pem, password "hunter2") and a client
    certificate (client.pem, client-key.pem)."""
    folder = Path(tempfile.mkdtemp(prefix="corral-tls-", dir="/var/tmp"))
    try:
        for name in ("server", "client"):
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-keyout", str(folder / f"{name}-key.pem"), "-out", str(folder / f"{name}.pem"),
                 "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"],
                check=True, capture_output=True, timeout=60)
        subprocess.run(
            ["openssl", "pkey", "-in", str(folder / "server-key.pem"), "-aes256", "-passout",
             "pass:hunter2", "-out", str(folder / "server-key-encrypted.pem")],
            check=True, capture_output=True, timeout=60)
        folder.chmod(0o755)
        for file in folder.iterdir():
            file.chmod(0o644)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def https_port(c) -> int:
    return int(c.wait_for_log(r"listening on https://127\.0\.0\.1:(\d+)")[1])


def https_get(port: int, tls_dir: Path, client: bool = False) -> http.client.HTTPResponse:
    context = ssl.create_default_context(cafile=str(tls_dir / "server.pem"))
    if client:
        context.load_cert_chain(str(tls_dir / "client.pem"), str(tls_dir / "client-key.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    conn.request("GET", "/", headers={"Connection": "close"})
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


@pytest.mark.parametrize("user", [[], ["--user", "nobody"]], ids=["root", "nobody"])
def test_tls_serves_https(corral, tls_dir, user):
    c = corral.start(*user, "--ssl-certfile", str(tls_dir / "server.pem"),
                     "--ssl-keyfile", str(tls_dir / "server-key.pem"), wait_ready=False)
    port = https_port(c)
    c.wait_ready(2)
    response = https_get(port, tls_dir)
    assert response.status == 200
    assert response.body.startswith(b"ok ")
    # Plain HTTP on the same port gets no answer.
    with pytest.raises((OSError, http.client.HTTPException)):
        plain = http_get(port, "/", timeout=5)
        assert plain.status != 200


def test_tls_every_option_with_client_certificates(corral, tls_dir):
    # gunicorn's spellings (--certfile, --keyfile, --ca-certs, --cert-reqs, --ciphers) and
    # uvicorn's (--ssl-version); the key's password from the environment, off the command line.
    c = corral.start("--certfile", str(tls_dir / "server.pem"),
                     "--keyfile", str(tls_dir / "server-key-encrypted.pem"),
                     "--ssl-version", str(int(ssl.PROTOCOL_TLS_SERVER)),
                     "--cert-reqs", str(int(ssl.CERT_REQUIRED)),
                     "--ca-certs", str(tls_dir / "client.pem"),
                     "--ciphers", "ECDHE+AESGCM:ECDHE+CHACHA20",
                     env={"CORRAL_SSL_KEYFILE_PASSWORD": "hunter2"}, wait_ready=False)
    port = https_port(c)
    c.wait_ready(2)
    assert https_get(port, tls_dir, client=True).status == 200
    with pytest.raises((OSError, http.client.HTTPException)):
        https_get(port, tls_dir, client=False)


def test_tls_wrong_password_is_found_by_check_config(corral, tls_dir):
    c = corral.run("--check-config", "--ssl-certfile", str(tls_dir / "server.pem"),
                   "--ssl-keyfile", str(tls_dir / "server-key-encrypted.pem"),
                   "--ssl-keyfile-password", "wrong", timeout=60)
    one_error(c, "cannot use corral's settings", "SSLError")


def test_tls_options_without_a_certificate_are_refused(corral, tls_dir):
    c = corral.run("--ssl-keyfile", str(tls_dir / "server-key.pem"), timeout=15)
    one_error(c, "--ssl-keyfile", "needs --ssl-certfile too")


# --------------------------------------------------------------------------------------------
# Response headers


def test_headers_are_added_and_uvicorns_own_can_be_dropped(corral):
    c = corral.start("--header", "X-Frame-Options: DENY", "--header", "X-Team:core",
                     workers=1)
    response = c.get("/")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-team"] == "core"
    assert response.headers.get("server") == "uvicorn"
    assert "date" in response.headers
    d = corral.start("--no-server-header", "--no-date-header", workers=1)
    bare = d.get("/")
    assert "server" not in bare.headers, bare.headers
    assert "date" not in bare.headers, bare.headers


def test_h11_max_incomplete_event_size(corral):
    args = ("--http", "h11", "--h11-max-incomplete-event-size", "1Ki")
    if uvicorn_version() < (0, 18, 0):
        c = corral.run(*args, timeout=30)
        refused_by_the_workers(c, "does not support --h11-max-incomplete-event-size (uvicorn >= "
                                  "0.18.0)")
        return
    c = corral.start(*args, workers=1)
    # h11 applies the limit to a head it is still waiting to complete: send 4 KB of one without
    # its end. Past the limit uvicorn answers 400 and closes; under h11's default (16 KiB) it
    # waits for the rest.
    assert unfinished_head_answer(c.port) != b"", "a 4 KB unfinished head passed a 1 KiB limit"
    d = corral.start("--http", "h11", workers=1)
    assert unfinished_head_answer(d.port) == b"", "h11's default limit refused a 4 KB head"


def unfinished_head_answer(port: int) -> bytes:
    """What the server sends, within 5 s, for 4 KB of a request head without its end: the
    status line, b"closed" if it closed the connection without one, b"" if it still waits."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"x" * 4000)
        sock.settimeout(5)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return b""
        except ConnectionResetError:
            return b"closed"
        print(f"answer: {data[:100]!r}")
        return data.split(b"\r\n")[0] if data else b"closed"


# --------------------------------------------------------------------------------------------
# WebSockets, with a minimal client: the handshake and frames of RFC 6455


class WebSocket:
    def __init__(self, port: int, extensions: str | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n")
        if extensions:
            request += f"Sec-WebSocket-Extensions: {extensions}\r\n"
        self.sock.sendall((request + "\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        self.headers = {name.strip().lower(): value.strip()
                        for name, _, value in (line.partition(":") for line in lines[1:])}

    def send(self, payload: bytes, opcode: int = 2):
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self) -> tuple[int, bytes]:
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read(8))[0]
        return first & 0x0F, self._read(length)

    def close(self):
        """A clean close (code 1000), so that the server's handler ends at once."""
        try:
            self.send(struct.pack("!H", 1000), opcode=8)
        except OSError:
            pass
        self.sock.close()


# A WebSocket the client left open holds uvicorn's shutdown until the drain deadline: keep that
# short, for the fixture's teardown.
SHORT_DRAIN = ("--graceful-timeout", "5s")


def test_ws_echo_and_per_message_deflate(corral):
    c = corral.start(*SHORT_DRAIN, "--ws", "wsproto", app="apps.echo_ws:app", workers=1)
    ws = WebSocket(c.port, extensions="permessage-deflate")
    try:
        assert ws.status == 101
        assert "permessage-deflate" in ws.headers.get("sec-websocket-extensions", "")
    finally:
        ws.close()
    plain = WebSocket(c.port)
    try:
        plain.send(b"hello")
        assert plain.receive() == (2, b"hello")
    finally:
        plain.close()
    d = corral.start(*SHORT_DRAIN, "--ws", "wsproto", "--no-ws-per-message-deflate",
                     app="apps.echo_ws:app", workers=1)
    ws = WebSocket(d.port, extensions="permessage-deflate")
    try:
        assert ws.status == 101
        assert "sec-websocket-extensions" not in ws.headers, ws.headers
    finally:
        ws.close()


def test_ws_none_refuses_the_upgrade(corral):
    c = corral.start(*SHORT_DRAIN, "--ws", "none", app="apps.echo_ws:app", workers=1)
    ws = WebSocket(c.port)
    try:
        assert ws.status != 101, ws.headers
    finally:
        ws.close()


NEEDS_WSPROTO_LIMITS = pytest.mark.skipif(
    uvicorn_version() < (0, 46, 0),
    reason="uvicorn's wsproto implementation honours ws_max_size and its pings since 0.46 "
           "(#2915, #2916); its websockets one needs python3-websockets, whose Debian release "
           "(10.4) breaks uvicorn 0.51's --ws auto")


@NEEDS_WSPROTO_LIMITS
def test_ws_max_size_closes_on_a_larger_message(corral):
    c = corral.start(*SHORT_DRAIN, "--ws", "wsproto", "--ws-max-size", "1Ki",
                     app="apps.echo_ws:app", workers=1)
    ws = WebSocket(c.port)
    try:
        ws.send(b"a" * 100)
        assert ws.receive() == (2, b"a" * 100)
        ws.send(b"b" * 4000)
        opcode, payload = ws.receive()
        assert opcode == 8, (opcode, payload[:50])
        assert struct.unpack("!H", payload[:2])[0] == 1009, payload
    finally:
        ws.close()


@NEEDS_WSPROTO_LIMITS
def test_ws_ping_interval(corral):
    c = corral.start(*SHORT_DRAIN, "--ws", "wsproto", "--ws-ping-interval", "500ms",
                     "--ws-ping-timeout", "20s", app="apps.echo_ws:app", workers=1)
    ws = WebSocket(c.port)
    try:
        opcode, _ = ws.receive()
        assert opcode == 9, f"expected a ping, got opcode {opcode}"
    finally:
        ws.close()


def test_ws_max_queue_needs_uvicorn_0_23(corral):
    if uvicorn_version() < (0, 23, 0):
        c = corral.run("--ws-max-queue", "4", timeout=30)
        refused_by_the_workers(c, "does not support --ws-max-queue (uvicorn >= 0.23.0)")
        return
    c = corral.start(*SHORT_DRAIN, "--ws", "wsproto", "--ws-max-queue", "4", app="apps.echo_ws:app",
                     workers=1)
    ws = WebSocket(c.port)
    try:
        ws.send(b"queued")
        assert ws.receive() == (2, b"queued")
    finally:
        ws.close()
