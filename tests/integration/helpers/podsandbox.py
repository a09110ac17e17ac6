"""Execs a command under a Kubernetes container's restricted securityContext, as far as one
root process can set it up on its own. Run as root, as PID 1 of `unshare -p -f --mount-proc`
(whose new mount namespace keeps these mounts from the host):

usage: podsandbox.py --uid N --gid N [--read-only-root] [--tmpfs PATH]... [--runtime-default]
                     -- COMMAND [ARG...]

--read-only-root   readOnlyRootFilesystem: every mount read-only but /proc, /dev and the tmpfs
--tmpfs PATH       an emptyDir volume mounted at PATH
--runtime-default  seccompProfile RuntimeDefault: the system calls that the container runtimes'
                   default profile refuses (https://docs.docker.com/engine/security/seccomp/,
                   whose profile containerd and CRI-O ship too) fail with EPERM. An
                   approximation: the real profile is an allow-list and filters some arguments
                   (clone's namespace flags); refusing these catches what a supervisor might
                   reach for (ptrace, unshare, bpf, mount, perf_event_open...).
Then runAsUser/runAsGroup, no supplementary groups, allowPrivilegeEscalation: false
(no_new_privs) and capabilities drop ALL, through util-linux's setpriv.
"""

import errno
import os
import subprocess
import sys

REFUSED = """acct add_key bpf clock_adjtime clock_settime create_module delete_module finit_module
get_kernel_syms get_mempolicy init_module ioperm iopl kcmp kexec_file_load kexec_load keyctl
lookup_dcookie mbind mount move_pages name_to_handle_at nfsservctl open_by_handle_at
perf_event_open pivot_root process_vm_readv process_vm_writev ptrace query_module quotactl
reboot request_key set_mempolicy setns settimeofday stime swapon swapoff sysfs _sysctl umount
umount2 unshare uselib userfaultfd ustat vm86 vm86old""".split()


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as info:
        return [line.split()[4] for line in info]


def read_only_root(keep: list[str]) -> None:
    for point in sorted(set(mount_points()), key=len):
        if point in ("/proc", "/dev") or point.startswith(("/proc/", "/dev/")) or point in keep:
            continue
        result = subprocess.run(["mount", "-o", "remount,bind,ro", point],
                                capture_output=True, text=True)
        if result.returncode != 0 and point == "/":
            sys.exit(f"podsandbox: cannot remount / read-only: {result.stderr.strip()}")


def runtime_default() -> None:
    import seccomp  # Debian's python3-seccomp

    profile = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in REFUSED:
        try:
            profile.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            pass  # not a system call on this architecture
    profile.load()


def main(argv: list[str]) -> None:
    uid = gid = None
    tmpfs, read_only, seccomp_default = [], False, False
    while argv and argv[0] != "--":
        option = argv.pop(0)
        if option == "--uid":
            uid = int(argv.pop(0))
        elif option == "--gid":
            gid = int(argv.pop(0))
        elif option == "--tmpfs":
            tmpfs.append(argv.pop(0))
        elif option == "--read-only-root":
            read_only = True
        elif option == "--runtime-default":
            seccomp_default = True
        else:
            sys.exit(f"podsandbox: unknown option {option}")
    command = argv[1:]
    if uid is None or gid is None or not command:
        sys.exit(__doc__)
    if read_only:
        read_only_root(tmpfs)
    for path in tmpfs:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777,size=64m", "tmpfs", path],
                       check=True)
    if seccomp_default:
        runtime_default()
    os.execvp("setpriv", ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                          "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all",
                          "--", *command])


if __name__ == "__main__":
    main(sys.argv[1:])
