"""How long the `vnfha` command takes, end to end, for a client command.

Starts one real coordinator (`vnfha coordinator`, memory backend, loopback port) and
runs, N times each as a fresh process the way an operator or a script does:

* `vnfha --version`          (start-up only: parse, print, exit)
* `vnfha status`             (start-up + one GetStatus over gRPC + the table)
* `vnfha status -o json`

and prints p50/p95/max wall-clock seconds and p50/p95 CPU seconds (user + sys) as
JSON. Most of a client command's time is
Python start-up and imports, which is what lazy imports in coordinator/cli.py cut.

    .venv/bin/python bench/cli_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VNFHA = str(Path(sys.executable).with_name("vnfha"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def timed(argv: list[str], runs: int) -> dict[str, float]:
    """Wall clock and CPU (user + sys) of each run. On a busy host the wall clock is
    mostly waiting for a core; the CPU time is what the command itself costs."""
    times, cpu = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - t0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
        cpu.append(usage.ru_utime + usage.ru_stime)
    return {"p50_s": round(pct(times, 0.5), 3), "p95_s": round(pct(times, 0.95), 3),
            "max_s": round(max(times), 3), "cpu_p50_s": round(pct(cpu, 0.5), 3),
            "cpu_p95_s": round(pct(cpu, 0.95), 3), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    if not 1 <= args.runs <= 1000:
        ap.error("--runs must be 1..1000")
    endpoint = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="vnfha-bench-") as tmp:
        cfg = Path(tmp) / "c1.yaml"
        cfg.write_text(f"node_id: c1\ncluster:\n  members:\n    - {{id: c1, api: {endpoint}}}\n"
                       "store: {backend: memory}\n"
                       "groups:\n  - {name: web, vip: 198.18.0.100/24}\n")
        coord = subprocess.Popen([VNFHA, "coordinator", "--config", str(cfg)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while subprocess.run([VNFHA, "--endpoint", endpoint, "status"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 timeout=30).returncode != 0:
                if time.monotonic() > deadline:
                    raise SystemExit("coordinator did not answer within 30 s")
                time.sleep(0.2)
            env_note = os.getloadavg()
            figures = {
                "vnfha --version": timed([VNFHA, "--version"], args.runs),
                "vnfha status": timed([VNFHA, "--endpoint", endpoint, "status"], args.runs),
                "vnfha status -o json": timed(
                    [VNFHA, "--endpoint", endpoint, "status", "-o", "json"], args.runs),
            }
        finally:
            coord.terminate()
            try:
                coord.wait(timeout=10)
            except subprocess.TimeoutExpired:
                coord.kill()
                coord.wait()
    print(json.dumps({"loadavg_at_start": [round(x, 2) for x in env_note], **figures},
                     indent=2))


if __name__ == "__main__":
    main()
