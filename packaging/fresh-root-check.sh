#!/usr/bin/env bash
# Runs the README's test command on a fresh machine: a minimal Debian bookworm root made by
# debootstrap, with this checkout's HEAD cloned into its /root/corral (mode 700, as on a real
# machine), and `packaging/bootstrap.sh test` run as root inside `chroot`. It proves that the
# bootstrap script installs everything the build and the suite need, and that no test depends
# on this machine's extras or on where the checkout lives.
#
#   packaging/fresh-root-check.sh [--keep] [WORKDIR]
#
# Needs root, the network (Debian's mirror) and a few GB under WORKDIR (by default a new
# folder in /var/tmp). Only committed work is tested: the clone is of HEAD. The chroot's
# mounts (/proc, /sys, /dev) live in a mount namespace of their own, so they vanish with it
# whatever happens, and never reach the host's mount table. WORKDIR is removed after a run
# that passed unless --keep is given; after a failure it is kept for a look (its logs are
# WORKDIR/*.log). Not part of the normal suite. Mirror: CORRAL_FRESH_MIRROR; the locale the
# session in the chroot asks for (not installed there): CORRAL_FRESH_LOCALE, empty for none.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MIRROR="${CORRAL_FRESH_MIRROR:-http://deb.debian.org/debian}"

die() {
  echo "fresh-root-check: $*" >&2
  exit 2
}

# ---- inside the private mount namespace: mount, run, unmount --------------------------------
if [[ "${1:-}" == "--in-namespace" ]]; then
  rootfs="$2"
  unmount() {
    # Deepest first; lazily, since a process the suite left behind may still hold a file.
    findmnt -rn -o TARGET | awk -v r="$rootfs" '$0 == r || index($0, r "/") == 1' | sort -r |
      while read -r target; do
        umount -l "$target" || true
      done
  }
  trap unmount EXIT
  # The root of a real machine is a mount point; a chroot's folder is not, and tools that
  # change the propagation of / (unshare --mount, as the PID-namespace tests use) then fail.
  mount --bind "$rootfs" "$rootfs"
  mount --rbind /proc "$rootfs/proc"
  mount --rbind /sys "$rootfs/sys"
  mount --rbind /dev "$rootfs/dev"
  # A root session gets a clean environment, as after a login on a new machine: nothing of
  # this machine's PATH or Python, and the locale a login from elsewhere brings along, which
  # the new machine does not have (CORRAL_FRESH_LOCALE= for none).
  locale="${CORRAL_FRESH_LOCALE-en_US.UTF-8}"
  chroot "$rootfs" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ${locale:+LANG="$locale" LC_ALL="$locale"} \
    ${CORRAL_FRESH_CA:+NODE_EXTRA_CA_CERTS="$CORRAL_FRESH_CA"} \
    /bin/bash -c 'cd /root/corral && packaging/bootstrap.sh test'
  exit $?
fi

# ---- on the host --------------------------------------------------------------------------
keep=0
if [[ "${1:-}" == "--keep" ]]; then
  keep=1
  shift
fi
[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot, mounts)"
command -v git >/dev/null || die "needs git to clone the checkout"
command -v unshare >/dev/null || die "needs unshare (util-linux)"
if ! command -v debootstrap >/dev/null; then
  echo "fresh-root-check: installing debootstrap" >&2
  apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
fi

commit="$(git -C "$ROOT" rev-parse HEAD)"
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]]; then
  echo "fresh-root-check: warning: uncommitted changes are not tested; the clone is of" \
    "HEAD ($commit)" >&2
fi

work="${1:-}"
if [[ -z "$work" ]]; then
  work="$(mktemp -d /var/tmp/corral-fresh-root.XXXXXX)"
else
  mkdir -p "$work"
  [[ -z "$(ls -A "$work")" ]] || die "$work is not empty; pass a new or empty folder"
fi
work="$(cd "$work" && pwd)"
rootfs="$work/rootfs"
started=$SECONDS
phase_started=$SECONDS
phase() {
  echo "fresh-root-check: $1 ($((SECONDS - phase_started)) s)" >&2
  phase_started=$SECONDS
}

echo "fresh-root-check: debootstrap --variant=minbase bookworm into $rootfs" >&2
if ! debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
  tail -20 "$work/debootstrap.log" >&2
  die "debootstrap failed; see $work/debootstrap.log"
fi
phase "debootstrap done"

cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
# A machine on this network trusts the certificates this host trusts beyond Debian's (those of
# a proxy that inspects TLS, say), or npm cannot reach its registry: they go along, and Node
# (npm) reads them from NODE_EXTRA_CA_CERTS.
export CORRAL_FRESH_CA=""
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cat /usr/local/share/ca-certificates/*.crt >"$rootfs/usr/local/share/ca-certificates/site.pem"
  CORRAL_FRESH_CA=/usr/local/share/ca-certificates/site.pem
fi
git clone --quiet --no-checkout "$ROOT" "$rootfs/root/corral"
git -C "$rootfs/root/corral" checkout --quiet --detach "$commit"
phase "cloned $commit into /root/corral"

# Processes whose root is the chroot: the suite's leftovers, or all of it when interrupted.
kill_leftovers() {
  local link pid
  for link in /proc/[0-9]*/root; do
    pid="${link#/proc/}"
    pid="${pid%/root}"
    if [[ "$(readlink "$link" 2>/dev/null)" == "$rootfs" ]]; then
      echo "fresh-root-check: killing pid $pid left in the chroot" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}
trap 'kill_leftovers; echo "fresh-root-check: interrupted; kept $work" >&2; exit 130' INT TERM

# In the background, so that the trap runs at once on a signal rather than after the suite.
{
  result=0
  unshare --mount --propagation private -- \
    "$ROOT/packaging/fresh-root-check.sh" --in-namespace "$rootfs" || result=$?
  echo "$result" >"$work/status"
} 2>&1 | tee "$work/test.log" &
wait $! || true
status="$(cat "$work/status" 2>/dev/null || echo 1)"
phase "packaging/bootstrap.sh test exited with $status"

kill_leftovers

# What the suite skipped: on a fresh root nothing should be skipped for want of a tool.
for build in build build-asan; do
  last="$rootfs/root/corral/$build/Testing/Temporary/LastTest.log"
  [[ -f "$last" ]] || continue
  skipped="$(grep -E '^SKIPPED' "$last" | sort | uniq -c || true)"
  echo "fresh-root-check: tests skipped in $build: ${skipped:-none}" >&2
done

total=$((SECONDS - started))
if [[ $status -eq 0 ]]; then
  echo "fresh-root-check: PASSED in ${total} s (commit $commit)"
  if [[ $keep -eq 0 ]]; then
    rm -rf --one-file-system "$work"
  else
    echo "fresh-root-check: kept $work"
  fi
else
  echo "fresh-root-check: FAILED (exit $status) in ${total} s (commit $commit); kept $work" \
    "(test output: $work/test.log)"
fi
exit "$status"
