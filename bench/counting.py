"""What the shim's request counting costs: wrk against one worker of two corral binaries, one
built without the counting (before it existed) and one with it, in alternating rounds.

    /usr/bin/python3 bench/counting.py BASELINE_CORRAL CORRAL [ROUNDS]

Both run bench/app.py with one worker and --no-access-log (the access log costs far more than
the counting and would hide it), `wrk -t1 -c16 -d8s` per round after a 2 s warm-up. It prints,
for each round and as medians, requests per second and the worker's CPU time per request (user
and system, from /proc). On a shared machine the throughput swings with the neighbours' load;
the CPU time per request is what the counting costs. Nothing passes or fails.
"""

import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"


def start(binary, log):
    proc = subprocess.Popen(
        [binary, "--workers", "1", "--bind", "127.0.0.1:0", "--admin-bind", "none",
         "--no-access-log", "--python", PYTHON, "--app-dir", HERE, "app:app"],
        stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = open(log.name).read()
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
        if port and re.search(r"worker 0 ready", text):
            return proc, int(port[1])
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"{binary} did not start:\n{open(log.name).read()}")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pid(corral_pid):
    """corral's child serving as worker 0 (the template is the other one)."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(corral_pid)],
                         capture_output=True, text=True, check=True).stdout
    return next(int(line.split()[0]) for line in out.splitlines() if "worker 0" in line)


def wrk(port, seconds):
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])


def measure(binary):
    with tempfile.NamedTemporaryFile("w", suffix=".log") as log:
        proc, port = start(binary, log)
        try:
            wrk(port, 2)
            worker = worker_pid(proc.pid)
            before = cpu_seconds(worker)
            rate = wrk(port, 8)
            return rate, (cpu_seconds(worker) - before) / (rate * 8) * 1e6
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def main():
    baseline, counting = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    results = {baseline: [], counting: []}
    for round_number in range(rounds):
        order = (baseline, counting) if round_number % 2 == 0 else (counting, baseline)
        for binary in order:
            results[binary].append(measure(binary))
            rate, cpu = results[binary][-1]
            print(f"round {round_number + 1}: {binary}: {rate:.0f} req/s, "
                  f"worker CPU {cpu:.1f} us/request", flush=True)
    for index, unit in ((0, "req/s"), (1, "us of worker CPU per request")):
        base = statistics.median(r[index] for r in results[baseline])
        new = statistics.median(r[index] for r in results[counting])
        print(f"median without counting {base:.1f} {unit}, with counting {new:.1f} "
              f"({(new - base) / base * 100:+.1f}%)")


if __name__ == "__main__":
    main()
