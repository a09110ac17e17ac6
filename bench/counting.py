"""What the shim's request counting costs: wrk against one worker of two corral binaries, one
built without the counting (before it existed) and one with it, in alternating rounds.

    /usr/bin/python3 bench/counting.py BASELINE_CORRAL CORRAL [ROUNDS]

Both run bench/app.py with one worker and --no-access-log (the access log costs far more than
the counting and would hide it), `wrk -t1 -c16 -d8s` per round after a 2 s warm-up. It prints
requests per second for each round and the medians. Nothing passes or fails.
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


def wrk(port, seconds):
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])


def measure(binary):
    with tempfile.NamedTemporaryFile("w", suffix=".log") as log:
        proc, port = start(binary, log)
        try:
            wrk(port, 2)
            return wrk(port, 8)
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
            print(f"round {round_number + 1}: {binary}: {results[binary][-1]:.0f} req/s",
                  flush=True)
    base, new = statistics.median(results[baseline]), statistics.median(results[counting])
    print(f"median without counting {base:.0f} req/s, with counting {new:.0f} req/s "
          f"({(new - base) / base * 100:+.1f}%)")


if __name__ == "__main__":
    main()
