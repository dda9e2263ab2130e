"""Where the test suite's time goes: wall and CPU seconds per test folder.

Runs pytest once per argument (a folder, or several in one quoted argument) and prints,
per run, JSON: wall seconds, CPU seconds of the run and of everything it started (a
cgroup counts the daemons the tests start in namespaces and containers, which no
`time` sees), the load average before and after, and pytest's closing line. CPU far
below wall means the run mostly waits (timeouts, leases, boots, ssh round trips), so
it can overlap other waiting runs: scripts/test.sh's lanes (docs/testing.md).

    .venv/bin/python bench/suite_time.py tests/ansible tests/packaging "tests/unit tests/sim"

Needs root (a cgroup of its own under the cpuacct hierarchy, v1 or v2). The machine
is two cores: on a shared machine wall times grow with the load, CPU times much less.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
V1 = Path("/sys/fs/cgroup/cpuacct")
V2 = Path("/sys/fs/cgroup/unified")


def make_cgroup(name: str) -> tuple[Path, str]:
    """A fresh cgroup for one run; its folder and the file its CPU total is read from."""
    if (V1 / "cpuacct.usage").exists():
        path = V1 / name
        path.mkdir()
        return path, "cpuacct.usage"
    base = V2 if (V2 / "cgroup.procs").exists() else Path("/sys/fs/cgroup")
    path = base / name
    path.mkdir()
    return path, "cpu.stat"


def cpu_seconds(path: Path, what: str) -> float:
    text = (path / what).read_text()
    if what == "cpuacct.usage":
        return int(text) / 1e9
    usage = dict(line.split() for line in text.splitlines())
    return int(usage["usage_usec"]) / 1e6


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_one(paths: str, extra: list[str]) -> dict[str, object]:
    cg, what = make_cgroup(f"vnfha-suite-time-{os.getpid()}-{time.monotonic_ns()}")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            *shlex.split(paths), *extra]
    before = load()
    started = time.monotonic()
    try:
        # The child joins the cgroup before it execs pytest: all it starts is counted.
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                              preexec_fn=lambda: (cg / "cgroup.procs").write_text("0"))
        wall = time.monotonic() - started
        cpu = cpu_seconds(cg, what)
    finally:
        try:
            cg.rmdir()
        except OSError:  # a process the run left behind: say so, it is a test bug
            print(f"cgroup {cg} not empty: {(cg / 'cgroup.procs').read_text().split()}",
                  file=sys.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return {"paths": paths, "exit": proc.returncode, "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "cpu_per_wall": round(cpu / wall, 2) if wall else None,
            "load_before": before, "load_after": load(),
            "pytest": lines[-1] if lines else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="what one pytest run gets (quote several)")
    parser.add_argument("--pytest-arg", action="append", default=[],
                        help="another pytest option for every run, e.g. --durations=20")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("suite_time: needs root (a cgroup per run)", file=sys.stderr)
        return 2
    for paths in args.paths:
        print(json.dumps(run_one(paths, args.pytest_arg)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
