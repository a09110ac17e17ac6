"""packaging/kubernetes/ (issue 11):

- every manifest validates offline against the Kubernetes API types (kubernetes_schema/: the
  npm packages kubernetes-models and typescript, installed by packaging/bootstrap.sh), and the
  validator rejects broken manifests;
- the Deployment's probes, ports, drain timings and grace period agree with each other and with
  corral's flags in the same manifest, and the other objects point at what exists;
- a pod's lifecycle, played against the real binary (kubesim.py): corral as PID 1 of its own pid
  namespace under the manifest's securityContext, probed like the kubelet probes it, behind a
  stand-in Service whose routing follows readiness a propagation lag late, under load. Waits
  (drain delay, probe periods, the lag) are scaled by SCALE; deadlines (graceful timeout, grace
  period) are not.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import (CORRAL_BIN, EVENT_DEADLINE, INTEGRATION_DIR, PYTHON, STARTUP_DEADLINE,
                      wait_until)
from kubesim import (KILL_GRACE, MANIFESTS, NO_ENDPOINTS, PROPAGATION_LAG, DirectConnections,
                     Kubelet, PodTemplate, ServiceProxy, binary_has_sanitizer, container,
                     documents, duration, flags, host_port, the)
from loadgen import LoadGenerator

REPO_ROOT = INTEGRATION_DIR.parents[1]
SCHEMA_TOOL = INTEGRATION_DIR / "kubernetes_schema" / "validate.mjs"
# Not applied by `kubectl apply -k`, for the reasons their own comments give.
NOT_IN_KUSTOMIZATION = {"migrate-job.yaml", "secret.example.yaml"}
# 10 s of drain delay become 4 s here; probe periods and the propagation lag shrink alike.
SCALE = 0.4


# --------------------------------------------------------------------------------------------
# Offline schema validation
# --------------------------------------------------------------------------------------------


def node_modules_parent() -> Path:
    candidates = [Path(p) for p in (os.environ.get("CORRAL_NPM_DIR"),) if p]
    candidates += [Path(CORRAL_BIN).resolve().parent / "npm", REPO_ROOT / "build" / "npm"]
    for candidate in candidates:
        if (candidate / "node_modules" / "kubernetes-models").is_dir():
            return candidate
    pytest.fail(f"kubernetes-models is not installed in any of {[str(c) for c in candidates]}: "
                "packaging/bootstrap.sh build installs it")


def validate(objects: dict[str, dict]) -> dict[str, list[str]]:
    """name -> the validator's errors for that object."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: packaging/bootstrap.sh build installs it")
    payload = json.dumps([{"name": name, "object": obj} for name, obj in objects.items()])
    result = subprocess.run([node, str(SCHEMA_TOOL), str(node_modules_parent())], input=payload,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"validator failed: {result.stderr}"
    return {r["name"]: r["errors"] for r in json.loads(result.stdout)}


def manifest_objects() -> dict[str, dict]:
    return {f"{name}#{i}": doc for name, docs in documents().items() if name != "kustomization.yaml"
            for i, doc in enumerate(docs)}


def test_every_manifest_validates_against_the_kubernetes_api_types():
    objects = manifest_objects()
    kinds = sorted(obj["kind"] for obj in objects.values())
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job",
                     "PodDisruptionBudget", "Secret", "Service"], kinds
    errors = validate(objects)
    assert errors.keys() == objects.keys()
    invalid = {name: e for name, e in errors.items() if e}
    assert not invalid, json.dumps(invalid, indent=1)


def _breakages() -> dict[str, dict]:
    """Manifests broken the ways people break them; each must be rejected."""
    deployment, hpa = the("Deployment"), the("HorizontalPodAutoscaler")

    def broken(obj, change):
        obj = copy.deepcopy(obj)
        change(obj)
        return obj

    def probe_typo(d):
        c = container(d)
        c["readinesProbe"] = c.pop("readinessProbe")

    def security_typo(d):
        container(d)["securityContext"]["readOnlyRootFileSystem"] = True

    return {
        "misspelt readinessProbe": broken(deployment, probe_typo),
        "misspelt readOnlyRootFilesystem": broken(deployment, security_typo),
        "port as text": broken(deployment, lambda d: container(d)["ports"][0].update(
            containerPort="8000x")),
        "no selector": broken(deployment, lambda d: d["spec"].pop("selector")),
        "strategy not an enum value": broken(deployment, lambda d: d["spec"]["strategy"].update(
            type="Rolling")),
        "args as one string": broken(deployment, lambda d: container(d).update(
            args="--bind 0.0.0.0:8000")),
        "autoscaling/v1 field in v2": broken(hpa, lambda h: h["spec"].update(
            targetCPUUtilizationPercentage=70)),
        "no such apiVersion": broken(hpa, lambda h: h.update(apiVersion="autoscaling/v3")),
    }


def test_the_validator_rejects_broken_manifests():
    breakages = _breakages()
    errors = validate({**breakages, "unchanged Deployment": the("Deployment")})
    for name, found in errors.items():
        print(f"{name}: {found}")
    assert errors.pop("unchanged Deployment") == []
    accepted = [name for name, found in errors.items() if not found]
    assert not accepted, f"the validator accepted broken manifests: {accepted}"


def test_kustomization_lists_every_manifest_to_apply():
    kustomization = documents()["kustomization.yaml"][0]
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed <= files, f"listed but missing: {listed - files}"
    assert files - listed == NOT_IN_KUSTOMIZATION, f"not listed: {files - listed}"
    image = container(the("Deployment"))["image"].rpartition(":")[0]
    assert [i["name"] for i in kustomization.get("images", [])] == [image]


# --------------------------------------------------------------------------------------------
# Consistency of the Deployment with corral's flags, and of the objects with each other
# --------------------------------------------------------------------------------------------


def corral_option_names() -> set[str]:
    text = subprocess.run([CORRAL_BIN, "--help"], capture_output=True, text=True,
                          timeout=30).stdout
    return set(re.findall(r"--(?:\[no-\])?([a-z][a-z0-9-]+)", text))


def test_probes_ports_and_drain_timings_agree_with_corrals_flags():
    deployment = the("Deployment")
    pod, c = deployment["spec"]["template"]["spec"], container(deployment)
    options, app = flags(c["args"])
    assert len(app) == 1 and ":" in app[0], f"one APP (module:attribute) in args: {app}"
    assert "command" not in c, "the image's ENTRYPOINT (corral) runs; flags go in args"
    assert set(options) <= corral_option_names(), set(options) - corral_option_names()

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    bind_host, bind_port = host_port(options["bind"])
    admin_host, admin_port = host_port(options["admin-bind"])
    # The kubelet probes the pod's IP, and the Service routes to it: loopback would not do.
    assert bind_host == admin_host == "0.0.0.0", (options["bind"], options["admin-bind"])
    assert ports["http"] == bind_port, f"containerPort {ports['http']} vs --bind {bind_port}"
    assert ports["admin"] == admin_port, f"admin containerPort vs --admin-bind {admin_port}"

    probes = {kind: c[f"{kind}Probe"] for kind in ("startup", "readiness", "liveness")}
    for kind, probe in probes.items():
        port = probe["httpGet"]["port"]
        assert ports.get(port, port) == admin_port, f"{kind} probe on {port}, not the admin port"
    assert probes["readiness"]["httpGet"]["path"] == "/ready"
    assert probes["liveness"]["httpGet"]["path"] == "/healthz"
    # /healthz passes as soon as corral runs: a startup probe on it would wait for nothing.
    assert probes["startup"]["httpGet"]["path"] == "/ready"

    grace = pod["terminationGracePeriodSeconds"]
    drain = duration(options.get("drain-delay", "0"))
    graceful = duration(options.get("graceful-timeout", "30s"))
    assert grace > drain + graceful + KILL_GRACE, (
        f"terminationGracePeriodSeconds {grace} <= drain {drain} + graceful {graceful} + "
        f"{KILL_GRACE}: the kubelet's SIGKILL would come before corral is done")
    readiness = probes["readiness"]
    noticed = readiness.get("periodSeconds", 10) * readiness.get("failureThreshold", 3)
    assert drain > noticed + PROPAGATION_LAG, (
        f"--drain-delay {drain}s does not cover a failed readiness period ({noticed}s) plus "
        f"{PROPAGATION_LAG}s of endpoint propagation")
    assert "preStop" not in c.get("lifecycle", {}), "--drain-delay replaces preStop"


def test_worker_sizing_fits_the_containers_resources():
    c = container(the("Deployment"))
    options, _ = flags(c["args"])
    limits = c["resources"]["limits"]
    assert options.get("workers") == "auto"

    def mebibytes(size: str) -> float:
        number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", size).groups()
        return int(number) * (1024 if unit == "Gi" else 1)

    # Without a CPU limit there is no quota: auto sizes from the CPU request (whole CPUs, at
    # least 1), and the memory budget must let that many workers fit the memory limit.
    if "cpu" not in limits:
        assert "worker-memory-budget" in options, "auto with no CPU limit needs a memory budget"
    budget = mebibytes(options["worker-memory-budget"])
    workers = mebibytes(limits["memory"]) // budget
    assert workers >= 1, f"limits.memory {limits['memory']} allows no worker of {budget}Mi"
    request = c["resources"]["requests"]["cpu"]
    millicores = int(request[:-1]) if request.endswith("m") else int(float(request) * 1000)
    assert max(1, millicores // 1000) <= workers, (
        f"requests.cpu {request} asks for more workers than {limits['memory']} holds")
    recycle = the("ConfigMap")["data"].get("CORRAL_MAX_WORKER_MEMORY")
    if recycle:
        assert mebibytes(recycle) <= budget, "workers recycled above their budget"


def test_configmap_holds_corral_options_that_the_args_do_not_override():
    options, _ = flags(container(the("Deployment"))["args"])
    names = corral_option_names()
    for key in the("ConfigMap")["data"]:
        assert key.startswith("CORRAL_"), key
        option = key[len("CORRAL_"):].lower().replace("_", "-")
        assert option in names, f"{key}: corral has no --{option}"
        assert option not in options, f"{key} is dead: --{option} in args wins"


def test_the_objects_point_at_each_other():
    deployment, service = the("Deployment"), the("Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    c = container(deployment)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}

    def selects(selector: dict) -> bool:
        return selector.items() <= labels.items()

    assert selects(deployment["spec"]["selector"]["matchLabels"])
    assert selects(service["spec"]["selector"])
    assert ports.get(service["spec"]["ports"][0]["targetPort"]) == ports["http"]
    assert selects(the("PodDisruptionBudget")["spec"]["selector"]["matchLabels"])

    hpa = the("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 30)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert (strategy["maxSurge"], strategy["maxUnavailable"]) == (1, 0)

    refs = {next(iter(s)): s[next(iter(s))]["name"] for s in c["envFrom"]}
    assert refs == {"configMapRef": the("ConfigMap")["metadata"]["name"],
                    "secretRef": the("Secret")["metadata"]["name"]}

    job = the("Job")
    migrate = job["spec"]["template"]["spec"]["containers"][0]
    assert migrate["image"] == c["image"]
    assert migrate["args"][:2] == ["run", "--"], "corral run -- CMD: the command as PID 1"
    assert job["spec"]["backoffLimit"] == 3
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    assert job["spec"]["template"]["spec"]["securityContext"] == \
        deployment["spec"]["template"]["spec"]["securityContext"]


# --------------------------------------------------------------------------------------------
# A pod's lifecycle against the real binary
# --------------------------------------------------------------------------------------------


def _image() -> Path:
    """What the container image would hold: corral and the test apps, in a folder the pod's
    user can read wherever the checkout is (a checkout in /root is closed to it), and not under
    /tmp, where the pod's emptyDir goes. Made once per test session, removed at its end."""
    global _IMAGE
    if _IMAGE is None:
        top = Path(tempfile.mkdtemp(prefix="corral-image-", dir="/var/tmp"))
        atexit.register(shutil.rmtree, top, ignore_errors=True)
        shutil.copy2(CORRAL_BIN, top / "corral")
        shutil.copytree(INTEGRATION_DIR / "apps", top / "app" / "apps",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for folder, _, files in os.walk(top):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o755 if name == "corral" else 0o644)
        _IMAGE = top
    return _IMAGE


_IMAGE: Path | None = None


def pod_command(template: PodTemplate, drain_delay: str | None = None) -> list[str]:
    """corral's command line from the manifest, as the container would run it, but: loopback
    and ports chosen by the kernel (read back from the log), the test app, Debian's python, and
    the drain delay scaled."""
    options, _ = flags(template.args)
    command = [str(_image() / "corral")]
    for name, value in options.items():
        if name in ("bind", "admin-bind"):
            value = "127.0.0.1:0"
        elif name == "app-dir":
            value = str(_image() / "app")
        elif name == "drain-delay":
            value = drain_delay or f"{duration(value) * SCALE:g}s"
        command.append(f"--{name}={value}")
    return command + [f"--python={PYTHON}", "apps.basic:app"]


def start_pod(corral, template: PodTemplate, proxy: ServiceProxy, name: str,
              drain_delay: str | None = None) -> Kubelet:
    env = dict(template.env)
    if binary_has_sanitizer(CORRAL_BIN):
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    c = corral.start(raw_args=pod_command(template, drain_delay), env=env, pidns=True,
                     wrapper=[PYTHON, *template.sandbox()], wait_ready=False)
    kubelet = Kubelet(name, c, template, proxy, SCALE)
    kubelet.start(deadline=STARTUP_DEADLINE)
    wait_until(lambda: proxy.event(name, "added"), EVENT_DEADLINE, f"{name} in the endpoints")
    return kubelet


def assert_restricted(kubelet: Kubelet, template: PodTemplate) -> None:
    """corral and a worker really run under the securityContext."""
    c = kubelet.pod
    for pid in (c.main_pid, c.host_worker_pids()[0]):
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines())
        assert status["Uid"].split() == [str(template.uid)] * 4, status["Uid"]
        assert status["Gid"].split() == [str(template.gid)] * 4, status["Gid"]
        for caps in ("CapEff", "CapPrm", "CapBnd"):
            assert int(status[caps], 16) == 0, f"{caps} {status[caps]}"
        assert status["NoNewPrivs"].strip() == "1"
        assert status["Seccomp"].strip() == "2"
        root = [line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                if line.split()[4] == "/"]
        assert "ro" in root[-1][5].split(","), root


class Load:
    """Both kinds of clients through the Service: a new connection per request, and keep-alive
    connections (some kept until the server closes them, some renewed after 20 or 200)."""

    def __init__(self, port: int):
        self.gens = {"close": LoadGenerator(port, "close", threads=2, pause=0.01,
                                            max_seconds=120, max_requests=200000),
                     "keepalive": LoadGenerator(port, "keepalive", threads=3, pause=0.01,
                                                max_seconds=120, max_requests=200000,
                                                per_connection=[0, 20, 200])}
        for gen in self.gens.values():
            gen.start()

    def wait_ok(self, n: int, since: float | None = None) -> None:
        for mode, gen in self.gens.items():
            assert gen.wait_for(n, "ok", since, timeout=EVENT_DEADLINE), gen.describe()

    def stop_now(self) -> None:
        for gen in self.gens.values():
            gen.stop_at(time.monotonic())

    def stop(self) -> None:
        for gen in self.gens.values():
            gen.stop()

    def results(self):
        return [r for gen in self.gens.values() for r in gen.snapshot()]


def terminate_under_load(corral, rolling: bool, drain_delay: str | None = None) -> dict:
    """Pod A serves under load through the Service; with `rolling`, pod B starts and becomes
    ready first, as maxSurge 1 / maxUnavailable 0 has it. Then A is terminated. Returns what
    happened, for the tests to judge."""
    template = PodTemplate.from_manifests()
    proxy = ServiceProxy(PROPAGATION_LAG * SCALE)
    kubelets: list[Kubelet] = []
    load = None
    try:
        a = start_pod(corral, template, proxy, "pod-a", drain_delay)
        kubelets.append(a)
        load = Load(proxy.port)
        load.wait_ok(100)
        if rolling:
            b = start_pod(corral, template, proxy, "pod-b", drain_delay)
            kubelets.append(b)
            wait_until(lambda: len(proxy.routed_to("pod-b")) >= 50, EVENT_DEADLINE,
                       "the Service to route to pod-b")
        else:
            proxy.on_empty = load.stop_now  # no pod left: the test's clients stop
        direct = DirectConnections(a.pod.port)
        code = a.terminate()
        direct.wait(EVENT_DEADLINE)
        if rolling:
            load.wait_ok(100, since=a.exited_at)
        load.stop()
        direct.stop()
        return {"template": template, "proxy": proxy, "a": a, "code": code, "direct": direct,
                "load": load, "results": load.results()}
    finally:
        for kubelet in kubelets:
            kubelet.stop()
        if load:
            load.stop()
        proxy.close()


def figures(run: dict) -> dict:
    """The numbers the README quotes: requests, failures, and when things happened after
    SIGTERM, in the scaled time of the test."""
    a, proxy, results = run["a"], run["proxy"], run["results"]
    t0 = a.sigterm_at
    ready_503 = a.first(a.readiness, False, t0)
    routed_a = proxy.routed_to("pod-a")
    refused = run["direct"].first_refused

    def rel(t):
        return None if t is None else round(t - t0, 3)

    return {
        "requests": len(results),
        "ok": sum(r.outcome == "ok" for r in results),
        "failed": sum(r.outcome not in ("ok", "idle_close", "status") for r in results),
        "non_2xx_from_pods": sum(r.outcome == "status" and r.body != NO_ENDPOINTS
                                 for r in results),
        "no_endpoint_503": sum(r.outcome == "status" and r.body == NO_ENDPOINTS
                               for r in results),
        "idle_close": sum(r.outcome == "idle_close" for r in results),
        "ok_after_sigterm": sum(r.outcome == "ok" and r.started >= t0 for r in results),
        "routed_to_a_after_sigterm": sum(r.at >= t0 for r in routed_a),
        "routed_with_error": [r for r in proxy.routed if r.error],
        "ready_503_at": rel(ready_503.at if ready_503 else None),
        "removed_from_endpoints_at": rel(proxy.event("pod-a", "removed")),
        "last_routed_to_a_at": rel(max(r.at for r in routed_a)),
        "first_refused_at": rel(refused.at if refused else None),
        "exited_at": rel(a.exited_at),
        "exit_code": run["code"],
        "sigkilled": a.sigkilled,
        "liveness_failures": [r for r in a.liveness if not r.ok],
    }


@pytest.mark.parametrize("rolling", [False, True], ids=["termination", "rolling-update"])
def test_pod_lifecycle_loses_no_request(corral, rolling):
    run = terminate_under_load(corral, rolling)
    found = figures(run)
    print(f"[{'rolling update' if rolling else 'termination'}] scale {SCALE}: "
          f"{ {k: v for k, v in found.items() if k != 'routed_with_error'} }")
    a, template = run["a"], run["template"]

    assert found["exit_code"] == 0 and not found["sigkilled"], (
        f"corral exited {found['exit_code']} (SIGKILL by the kubelet: {found['sigkilled']})")
    failures = [r for r in run["results"] if r.outcome not in ("ok", "idle_close")
                and r.body != NO_ENDPOINTS]
    assert not failures, f"{len(failures)} requests failed: {failures[:5]}"
    assert not found["routed_with_error"], found["routed_with_error"][:5]
    # Clients retry a request sent on a keep-alive connection the server had just closed.
    assert found["idle_close"] <= max(5, 0.01 * found["requests"]), found["idle_close"]
    if rolling:
        assert found["no_endpoint_503"] == 0, "the Service was left with no ready pod"
    # The drain delay was used: connections routed to the pod after SIGTERM were served.
    assert found["routed_to_a_after_sigterm"] > 0 and found["ok_after_sigterm"] > 0
    assert found["ready_503_at"] is not None, "the kubelet never saw /ready fail"
    assert found["first_refused_at"] is not None, "the pod never stopped taking connections"
    assert found["ready_503_at"] < found["first_refused_at"], (
        "new connections were refused before the readiness probe failed")
    assert found["last_routed_to_a_at"] < found["first_refused_at"], (
        "the Service still routed to the pod after it stopped taking connections")
    assert not found["liveness_failures"], found["liveness_failures"]
    assert len(a.liveness) >= 2 and len(a.readiness) >= 2, "the probes did not run"


def test_pod_runs_under_the_manifests_security_context(corral):
    template = PodTemplate.from_manifests()
    proxy = ServiceProxy(0)
    try:
        kubelet = start_pod(corral, template, proxy, "pod")
        assert_restricted(kubelet, template)
        assert kubelet.pod.main_pid != kubelet.pod.pid  # PID 1 inside, under unshare
        kubelet.stop()
    finally:
        proxy.close()


def test_without_the_drain_delay_the_same_termination_loses_requests(corral):
    """The negative control of the lifecycle test: with --drain-delay 0, connections that the
    Service routes to the pod while its removal propagates fail. If this passes while the test
    above does too, the stand-in cluster can tell."""
    run = terminate_under_load(corral, rolling=True, drain_delay="0s")
    found = figures(run)
    print(f"--drain-delay 0: { {k: v for k, v in found.items() if k != 'routed_with_error'} }")
    assert found["exit_code"] == 0
    assert found["failed"] + len(found["routed_with_error"]) > 0, (
        "no request failed although the pod stopped taking connections while still routed")
