"""packaging/kubernetes/ read as the cluster would read it, and the cluster's parts that decide
whether a pod's termination loses requests, played on loopback against the real binary:

- Kubelet: runs the startup, readiness and liveness probes of the Deployment (httpGet on the
  admin port, kube-probe's headers), reports readiness to the endpoints, and terminates the pod
  as the kubelet does: SIGTERM to the container's PID 1 (no preStop: the manifest has none),
  SIGKILL once terminationGracePeriodSeconds have passed.
- ServiceProxy: the endpoints controller and kube-proxy in one: new connections go round-robin
  to the pods whose readiness probe passed, and a change of readiness reaches the routing only
  a propagation lag after the probe saw it, as on a real cluster, where kube-proxy, ingress
  controllers and meshes learn it seconds later. With no endpoint it answers 503, as ingress
  controllers do, so those requests are told apart from the pod's own answers.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import yaml

from conftest import INTEGRATION_DIR, http_request

REPO_ROOT = INTEGRATION_DIR.parents[1]
MANIFESTS = REPO_ROOT / "packaging" / "kubernetes"

# After terminating stragglers with SIGKILL at --graceful-timeout, corral waits up to 3 s for
# them to be gone before it exits (README, "Drain").
KILL_GRACE = 3.0
# How long after a pod's readiness changes the clusters' routing (kube-proxy, ingress
# controllers, meshes) follows: "a few seconds". --drain-delay must cover it plus one readiness
# period, or connections are routed to a pod that no longer accepts them.
PROPAGATION_LAG = 3.0
NO_ENDPOINTS = b"no endpoints"


# --------------------------------------------------------------------------------------------
# The manifests
# --------------------------------------------------------------------------------------------


def documents() -> dict[str, list[dict]]:
    """Every YAML document of packaging/kubernetes/, by file name."""
    return {path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
            for path in sorted(MANIFESTS.glob("*.yaml"))}


def the(kind: str) -> dict:
    """The one object of this kind in the manifests."""
    found = [doc for docs in documents().values() for doc in docs if doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in {MANIFESTS}, found {len(found)}"
    return found[0]


def container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "the Deployment should have one container, corral"
    return containers[0]


def flags(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """corral's options (--name=value, --name value, or --flag) and its positional arguments."""
    options, positional, it = {}, [], iter(args)
    for arg in it:
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            options[name] = value if eq else next(it)
        else:
            positional.append(arg)
    return options, positional


def duration(text: str) -> float:
    """corral's durations: 30, 0.5, 500ms, 30s, 2m, 1h."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    assert match, f"not a duration: {text!r}"
    return float(match[1]) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[match[2]]


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


@dataclass
class Probe:
    path: str
    port: int | str
    period: float
    failure_threshold: int
    timeout: float

    @classmethod
    def of(cls, probe: dict) -> "Probe":
        return cls(probe["httpGet"]["path"], probe["httpGet"]["port"],
                   probe.get("periodSeconds", 10), probe.get("failureThreshold", 3),
                   probe.get("timeoutSeconds", 1))


@dataclass
class PodTemplate:
    """What the lifecycle tests take from deployment.yaml (and the env its envFrom names)."""

    args: list[str]
    env: dict[str, str]
    grace: float
    startup: Probe
    readiness: Probe
    liveness: Probe
    uid: int
    gid: int
    read_only_root: bool
    tmpfs: list[str]
    drop_all: bool
    no_new_privs: bool
    runtime_default: bool

    @classmethod
    def from_manifests(cls) -> "PodTemplate":
        deployment = the("Deployment")
        pod = deployment["spec"]["template"]["spec"]
        c = container(deployment)
        env = {}
        for source in c.get("envFrom", []):
            if "configMapRef" in source:
                env.update(the("ConfigMap")["data"])
            if "secretRef" in source:
                env.update(the("Secret").get("stringData", {}))
        pod_security, security = pod.get("securityContext", {}), c.get("securityContext", {})
        empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        return cls(
            args=list(c["args"]), env=env, grace=pod["terminationGracePeriodSeconds"],
            startup=Probe.of(c["startupProbe"]), readiness=Probe.of(c["readinessProbe"]),
            liveness=Probe.of(c["livenessProbe"]),
            uid=security.get("runAsUser", pod_security.get("runAsUser")),
            gid=security.get("runAsGroup", pod_security.get("runAsGroup")),
            read_only_root=security.get("readOnlyRootFilesystem", False),
            tmpfs=[m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in empty_dirs],
            drop_all="ALL" in security.get("capabilities", {}).get("drop", []),
            no_new_privs=security.get("allowPrivilegeEscalation") is False,
            runtime_default=(security.get("seccompProfile") or pod_security.get(
                "seccompProfile", {})).get("type") == "RuntimeDefault")

    def sandbox(self) -> list[str]:
        """The wrapper that runs corral under this pod's securityContext (helpers/
        podsandbox.py); it must run as PID 1 of its own pid and mount namespace."""
        assert self.uid and self.uid > 0 and self.gid is not None, "runAsUser/runAsGroup"
        assert self.drop_all and self.no_new_privs, "capabilities drop ALL, no escalation"
        wrapper = [str(INTEGRATION_DIR / "helpers" / "podsandbox.py"), "--uid", str(self.uid),
                   "--gid", str(self.gid)]
        if self.read_only_root:
            wrapper.append("--read-only-root")
        for path in self.tmpfs:
            wrapper += ["--tmpfs", path]
        if self.runtime_default:
            wrapper.append("--runtime-default")
        return wrapper + ["--"]


# --------------------------------------------------------------------------------------------
# The Service: endpoints controller and kube-proxy
# --------------------------------------------------------------------------------------------


@dataclass
class Routed:
    at: float
    pod: str | None  # None: no endpoint, answered 503
    error: str = ""  # the connection to the pod failed (reset toward the client)


class ServiceProxy:
    def __init__(self, lag: float):
        self.lag = lag
        self.routed: list[Routed] = []
        self.events: list[tuple[float, str, str]] = []  # (time, pod, "added" | "removed")
        self.on_empty = None  # called (in the proxy's thread) when the last endpoint goes
        self._ready: dict[str, bool] = {}
        self._endpoints: dict[str, int] = {}  # routable pods: name -> port
        self._turn = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="service-proxy")
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                       backlog=1024))
        self.port = self._server.sockets[0].getsockname()[1]

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    # ---- the endpoints controller ------------------------------------------------------------

    def readiness(self, pod: str, port: int, ready: bool) -> None:
        """The kubelet's latest readiness result for pod; the routing follows `lag` later."""
        if self._ready.get(pod) == ready:
            return
        self._ready[pod] = ready
        self._loop.call_soon_threadsafe(self._loop.call_later, self.lag, self._apply, pod,
                                        port, ready)

    def _apply(self, pod: str, port: int, ready: bool) -> None:
        if ready:
            self._endpoints[pod] = port
        elif self._endpoints.pop(pod, None) is not None and not self._endpoints and self.on_empty:
            self.on_empty()
        self.events.append((time.monotonic(), pod, "added" if ready else "removed"))

    def event(self, pod: str, what: str) -> float | None:
        return next((t for t, p, w in self.events if p == pod and w == what), None)

    def routed_to(self, pod: str) -> list[Routed]:
        return [r for r in list(self.routed) if r.pod == pod]

    # ---- kube-proxy --------------------------------------------------------------------------

    async def _handle(self, client_reader, client_writer):
        pods = sorted(self._endpoints)
        pod = pods[next(self._turn) % len(pods)] if pods else None
        port = self._endpoints.get(pod)
        record = Routed(time.monotonic(), pod)
        self.routed.append(record)
        if pod is None:
            client_writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n"
                                b"Connection: close\r\n\r\n%s" % (len(NO_ENDPOINTS), NO_ENDPOINTS))
            await client_writer.drain()
            client_writer.close()
            return
        try:
            pod_reader, pod_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, asyncio.TimeoutError) as exc:
            record.error = f"connect: {exc!r}"
            client_writer.transport.abort()
            return
        await asyncio.gather(self._pipe(client_reader, pod_writer, record, "to pod"),
                             self._pipe(pod_reader, client_writer, record, "from pod"))
        pod_writer.close()
        client_writer.close()

    @staticmethod
    async def _pipe(reader, writer, record: Routed, direction: str) -> None:
        """Relays one direction; an EOF is passed on as a half-close, a reset as a reset."""
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
        except (OSError, asyncio.IncompleteReadError) as exc:
            record.error = record.error or f"{direction}: {exc!r}"
            writer.transport.abort()

    def close(self) -> None:
        """Stops listening and ends the connections still relayed (keep-alive ones)."""
        async def shutdown():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# --------------------------------------------------------------------------------------------
# The kubelet
# --------------------------------------------------------------------------------------------


KUBE_PROBE_HEADERS = {"User-Agent": "kube-probe/1.33", "Accept": "*/*"}


@dataclass
class ProbeResult:
    at: float
    ok: bool
    detail: str


@dataclass
class Kubelet:
    """One pod's kubelet. `scale` shortens the probe periods as it shortens the drain delay;
    probe timeouts are generous instead of the manifest's 1 s, because this machine is small and
    shared (a timed-out probe here would be the machine's noise, not corral's)."""

    name: str
    pod: object  # conftest.Corral
    template: PodTemplate
    proxy: ServiceProxy
    scale: float
    probe_timeout: float = 5.0
    readiness: list[ProbeResult] = field(default_factory=list)
    liveness: list[ProbeResult] = field(default_factory=list)
    started_at: float | None = None
    sigterm_at: float | None = None
    exited_at: float | None = None
    sigkilled: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def probe(self, spec: Probe) -> ProbeResult:
        at = time.monotonic()
        try:
            response = http_request(self.pod.admin_port, spec.path, timeout=self.probe_timeout,
                                    headers=KUBE_PROBE_HEADERS)
            return ProbeResult(at, 200 <= response.status < 400, f"{response.status}")
        except Exception as exc:  # noqa: BLE001 - any failure is a failed probe
            return ProbeResult(at, False, repr(exc))

    def start(self, deadline: float) -> None:
        """Runs the startup probe until it passes (its failureThreshold is the limit, or
        `deadline` seconds on this machine if that is longer), then the readiness and liveness
        probes in the background."""
        spec = self.template.startup
        limit = max(spec.period * spec.failure_threshold * self.scale, deadline)
        begin = time.monotonic()
        while True:
            result = self.probe(spec)
            if result.ok:
                self.started_at = result.at
                break
            if not self.pod.running or time.monotonic() - begin > limit:
                raise AssertionError(f"pod {self.name}: startup probe never passed ({result.detail});"
                                     f" log:\n{self.pod.tail()}")
            time.sleep(spec.period * self.scale)
        for spec, results, on_result in (
                (self.template.readiness, self.readiness, self._readiness_seen),
                (self.template.liveness, self.liveness, None)):
            thread = threading.Thread(target=self._run, args=(spec, results, on_result),
                                      daemon=True, name=f"{self.name}-{spec.path}")
            thread.start()
            self._threads.append(thread)

    def _run(self, spec: Probe, results: list[ProbeResult], on_result) -> None:
        failures, passing = 0, False  # a readiness probe starts as failing
        next_at = time.monotonic()
        while not self._stop.is_set():
            result = self.probe(spec)
            if not self.pod.running:
                return  # the container is gone: the kubelet stops probing it
            results.append(result)
            failures = 0 if result.ok else failures + 1
            passing = result.ok or (passing and failures < spec.failure_threshold)
            if on_result:
                on_result(passing)
            next_at += spec.period * self.scale
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _readiness_seen(self, ready: bool) -> None:
        self.proxy.readiness(self.name, self.pod.port, ready)

    def terminate(self) -> int:
        """SIGTERM to the container's PID 1; SIGKILL after terminationGracePeriodSeconds (not
        scaled: a deadline, not a wait). Returns the exit code."""
        self.sigterm_at = time.monotonic()
        self.pod.send_signal(signal.SIGTERM)
        try:
            code = self.pod.proc.wait(timeout=self.template.grace)
        except subprocess.TimeoutExpired:
            self.sigkilled = True
            self.pod.send_signal(signal.SIGKILL)
            code = self.pod.proc.wait(timeout=30)
        self.exited_at = time.monotonic()
        self.pod.returncode = code
        self.stop()
        # A container that has exited is not ready, probe or no probe.
        self.proxy.readiness(self.name, self.pod.port, False)
        return code

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.probe_timeout + 5)

    def first(self, results: list[ProbeResult], ok: bool, after: float) -> ProbeResult | None:
        return next((r for r in results if r.ok == ok and r.at >= after), None)


class DirectConnections:
    """New connections straight to a pod's port (not through the Service), one every 50 ms, as
    the slowest kube-proxy would send them: tells when the pod stopped taking new ones."""

    def __init__(self, port: int, timeout: float = 1.0):
        self.port, self.timeout = port, timeout
        self.results: list[ProbeResult] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="direct")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                status = http_request(self.port, "/", timeout=self.timeout).status
                self.results.append(ProbeResult(at, status == 200, str(status)))
            except OSError as exc:
                self.results.append(ProbeResult(at, False, repr(exc)))
                return  # the first refusal is what was asked
            except Exception as exc:  # noqa: BLE001 - http.client's errors on a closed peer
                self.results.append(ProbeResult(at, False, repr(exc)))
                return
            self._stop.wait(0.05)

    @property
    def first_refused(self) -> ProbeResult | None:
        return next((r for r in self.results if not r.ok), None)

    def wait(self, timeout: float) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def binary_has_sanitizer(path: str) -> bool:
    """Whether corral was built with AddressSanitizer, whose leak check at exit needs ptrace,
    which RuntimeDefault refuses (in a real pod as here)."""
    with open(path, "rb") as binary:
        return b"__asan_init" in binary.read()
