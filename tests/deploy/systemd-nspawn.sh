#!/usr/bin/env bash
# Runs packaging/systemd/'s units under a real systemd: a Debian bookworm tree (debootstrap,
# kept in $TREE between runs) booted with systemd-nspawn, with no network but loopback. Inside,
# a oneshot unit starts corral.service and corral@demo.service through their sockets, checks
# serving, READY=1, reload, orphan reaping (corral as subreaper) and the sandbox as the worker
# sees it, stops both, and powers off. Prints the transcript; exits 1 if a check failed.
#
# Not part of ctest: the first run downloads a Debian system (minutes). As root:
#   tests/deploy/systemd-nspawn.sh [BUILD_DIR]        (default build/)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
TREE="${TREE:-/var/tmp/corral-nspawn}"
OUT="$(mktemp -d)"

for tool in debootstrap systemd-nspawn; do
  command -v "$tool" >/dev/null || missing+=("${tool/systemd-nspawn/systemd-container}")
done
if [[ -n "${missing[*]:-}" ]]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if [[ ! -x "$TREE/usr/bin/python3" ]]; then
  debootstrap --variant=minbase bookworm "$TREE" http://deb.debian.org/debian >/dev/null
  chroot "$TREE" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
    -y -qq --no-install-recommends systemd systemd-sysv dbus python3-uvicorn libspdlog1.10 \
    libfmt9 curl procps >/dev/null'
fi

install -m 755 "$BUILD/corral" "$TREE/usr/local/bin/corral"
cp "$ROOT"/packaging/systemd/*.service "$ROOT"/packaging/systemd/*.socket "$TREE/etc/systemd/system/"
mkdir -p "$TREE/etc/corral"
sed 's|^CORRAL_PYTHON=.*|CORRAL_PYTHON=/usr/bin/python3|' "$ROOT/packaging/systemd/corral@.env.example" \
  >"$TREE/etc/corral/demo.env"
for app in app demo; do  # corral.service serves /srv/app, corral@demo.service /srv/demo
  rm -rf "$TREE/srv/$app" && mkdir -p "$TREE/srv/$app"
  cp -r "$ROOT/tests/integration/apps" "$TREE/srv/$app/"
  cat >"$TREE/srv/$app/main.py" <<'EOF'
"""apps.procs, plus GET /self: the worker's sandbox as it sees it."""
import json, os
from apps.procs import app as procs_app


def writable(path):
    try:
        with open(os.path.join(path, "probe"), "w"):
            pass
        os.unlink(os.path.join(path, "probe"))
        return "writable"
    except OSError as exc:
        return exc.strerror


async def app(scope, receive, send):
    if scope["type"] != "http" or scope["path"] != "/self":
        return await procs_app(scope, receive, send)
    keys = ("Uid", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp")
    found = {k: v.strip() for k, _, v in (line.partition(":") for line in open("/proc/self/status"))
             if k in keys}
    found.update(app_dir=writable(os.getcwd()), tmp=writable("/tmp"), umask=oct(os.umask(0o77)))
    body = json.dumps(found).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
EOF
done

cat >"$OUT/check.sh" <<'EOF'
#!/bin/bash
exec >/check/result.log 2>&1
set -x
systemctl start corral.socket corral-admin.socket
curl -sS -m 60 http://127.0.0.1:8000/; echo
curl -sS http://127.0.0.1:8081/ready; echo
curl -sS http://127.0.0.1:8000/self; echo
main=$(systemctl show -P MainPID corral.service)
curl -sS "http://127.0.0.1:8000/orphans?n=3&hold=1"; echo
ps -o pid,ppid,user,comm --ppid "$main"
for try in $(seq 20); do  # /release must reach the worker that made them: one of two
  curl -sS http://127.0.0.1:8000/release; echo
  curl -sS http://127.0.0.1:8081/metrics | grep -q '^corral_orphans_reaped_total 3' && break
  sleep 0.5
done
curl -sS http://127.0.0.1:8081/metrics | grep '^corral_orphans_reaped_total'
systemctl reload corral.service && curl -sS http://127.0.0.1:8000/; echo
systemctl stop corral.service
systemctl show corral.service -p Result -p ExecMainStatus
systemctl start corral@demo.socket corral-admin@demo.socket
curl -sS -m 60 --unix-socket /run/corral/demo.sock http://x/self; echo
curl -sS --unix-socket /run/corral/demo.admin.sock http://x/ready; echo
systemctl stop corral@demo.service
systemctl show corral@demo.service -p Result -p ExecMainStatus
journalctl -b --no-pager -o short-monotonic -u corral.service -u corral@demo.service | grep -v INFO:
systemctl poweroff
EOF
chmod +x "$OUT/check.sh"
cat >"$TREE/etc/systemd/system/corral-check.service" <<'EOF'
[Service]
Type=oneshot
ExecStart=/check/check.sh
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/corral-check.service \
  "$TREE/etc/systemd/system/multi-user.target.wants/corral-check.service"

timeout 300 systemd-nspawn -q --register=no --keep-unit -D "$TREE" -b --private-network \
  --bind="$OUT:/check" --console=pipe >"$OUT/boot.log" 2>&1 || true
cat "$OUT/result.log"

result="$(cat "$OUT/result.log")"
failed=0
check() {  # DESCRIPTION PATTERN [TIMES]: PATTERN on at least TIMES lines (default 1)
  if [[ $(grep -cE -- "$2" <<<"$result") -ge ${3:-1} ]]; then echo "ok: $1"; else
    echo "FAILED: $1"; failed=1; fi
}
check "both services stopped by their drain" '^Result=success' 2
check "both services exited 0" '^ExecMainStatus=0' 2
check "workers without capabilities, no_new_privs, seccomp" \
  '"CapEff": "0000000000000000", "CapBnd": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"' 2
check "app directory read-only, /tmp writable, umask 077" \
  '"app_dir": "Read-only file system", "tmp": "writable", "umask": "0o77"' 2
check "orphans reaped by corral as subreaper" '^corral_orphans_reaped_total 3'
check "reload (SIGHUP) completed" 'Reloaded corral.service'
check "the template instance listened on its unix sockets" 'listening on unix:/run/corral/demo.sock'
exit "$failed"
