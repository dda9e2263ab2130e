"""Run the test suite as concurrent pytest processes ("lanes") and report them as one.

Why: most of the suite's wall time is spent waiting (playbook runs over ssh, containers
booting, leases running out), not computing. The deployment tests (tests/ansible,
tests/packaging) build their own namespace labs, containers, temp dirs and wheels, and
share no port, namespace or file with the rest, so they run beside it in a second
pytest process instead of after it. Every test still runs, with all its assertions.

    python scripts/pytest_lanes.py --lane deploy=tests/ansible,tests/packaging [-- ARGS]

The last lane, "main", is everything else (pytest's testpaths minus the other lanes'
paths). Main's output streams live; each other lane writes to build/test-lanes/NAME.log,
printed in full once main is done. The end is one report: every lane's pytest
summary, every failed or erroring test of any lane, and a closing total line
(`total: N passed, N failed, N skipped`). The exit status is non-zero if any lane
failed, stopped, or ran no test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEARDOWN_SECONDS = 90.0  # a stopped lane's fixtures get this long to clean up

# pytest's closing line: "1 failed, 1890 passed, 3 skipped, 2 warnings in 901.20s (0:15:01)"
_COUNT_RE = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)\b")
_SUMMARY_RE = re.compile(r"^=*\s*(?:no tests ran|\d+ \w+.*) in [\d.]+s\b.*$")
# pytest -ra: "FAILED tests/x.py::test_y - AssertionError: ..." and "ERROR tests/x.py ..."
_PROBLEM_RE = re.compile(r"^(FAILED|ERROR) \S+")


@dataclass
class LaneResult:
    """What one lane's pytest printed and how it exited (pure data: see `report`)."""

    name: str
    paths: list[str]
    returncode: int
    output: str
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def summary_line(self) -> str:
        lines = [ln.strip() for ln in self.output.splitlines() if _SUMMARY_RE.match(ln.strip())]
        return lines[-1].strip("= ") if lines else "(no pytest summary line)"

    @property
    def problems(self) -> list[str]:
        return [ln.rstrip() for ln in self.output.splitlines() if _PROBLEM_RE.match(ln)]


def parse_counts(summary: str) -> dict[str, int]:
    """Outcome counts of a pytest summary line ("errors" folded into "error")."""
    counts: dict[str, int] = {}
    for number, word in _COUNT_RE.findall(summary):
        key = "error" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return counts


def lane_ok(lane: LaneResult) -> bool:
    """A lane passed: pytest said so (exit 0) and ran at least one test."""
    return lane.returncode == 0 and lane.counts.get("passed", 0) > 0


def report(lanes: Sequence[LaneResult]) -> tuple[list[str], int]:
    """The closing report (lines) and the exit status of the whole run.

    The status is 0 only if every lane passed; else the first failing lane's pytest
    status (1 for failures, 5 for a lane that ran no test, ...), or 1 for a lane that
    exited 0 without one passed test (it proved nothing)."""
    lines = ["== pytest lanes"]
    total: dict[str, int] = {}
    for lane in lanes:
        for key, value in lane.counts.items():
            total[key] = total.get(key, 0) + value
        state = "ok" if lane_ok(lane) else f"FAILED (exit {lane.returncode})"
        lines.append(f"lane {lane.name} [{' '.join(lane.paths) or 'rest'}]: {state}, "
                     f"{lane.seconds:.0f} s: {lane.summary_line}")
    problems = [p for lane in lanes for p in lane.problems]
    if problems:
        lines.append("failed or erroring tests, all lanes:")
        lines.extend(f"  [{lane.name}] {p}" for lane in lanes for p in lane.problems)
    failed = total.get("failed", 0) + total.get("error", 0)
    closing = f"total: {total.get('passed', 0)} passed, {failed} failed"
    if total.get("skipped"):
        closing += f", {total['skipped']} skipped"
    lines.append(closing)
    status = 0
    for lane in lanes:
        if not lane_ok(lane):
            status = lane.returncode or 1
            break
    return lines, status


def pytest_argv(paths: Sequence[str], ignore: Sequence[str], extra: Sequence[str]) -> list[str]:
    """One lane's command: its paths (or testpaths with `ignore` left out)."""
    argv = [sys.executable, "-m", "pytest", "-q", *extra]
    argv += [f"--ignore={p}" for p in ignore]
    return argv + list(paths)


def parse_lanes(specs: Sequence[str], root: Path = ROOT) -> list[tuple[str, list[str]]]:
    """`NAME=path,path` specs; refuse what would run a test twice or not at all."""
    lanes: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for spec in specs:
        name, sep, rest = spec.partition("=")
        paths = [p for p in rest.split(",") if p]
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]*", name) or not paths:
            raise ValueError(f"--lane {spec!r}: expected NAME=path[,path...]")
        if name == "main" or name in {n for n, _ in lanes}:
            raise ValueError(f"--lane {spec!r}: lane name {name!r} is taken")
        for p in paths:
            if not (root / p).exists():
                raise ValueError(f"--lane {spec!r}: no such path {p!r}")
            if p in seen:
                raise ValueError(f"--lane {spec!r}: {p!r} is in two lanes")
            seen.add(p)
        lanes.append((name, paths))
    return lanes


def run(specs: Sequence[str], extra: Sequence[str], root: Path = ROOT) -> int:
    """Start every lane, stream main, wait for all, print the report; the exit status."""
    lanes = parse_lanes(specs, root)
    others = [p for _, paths in lanes for p in paths]
    log_dir = root / "build" / "test-lanes"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[tuple[str, list[str], subprocess.Popen[bytes], Path | None, float]] = []

    def stop_all(signum: int, _frame: object) -> None:
        """Stopped (a CI time limit, ^C): stop every lane, and show where each side lane
        was, since its log is otherwise printed only at the end."""
        # ^C to each lane, as a terminal would send it: pytest then runs the fixtures'
        # teardown (labs, containers, clusters go away); what is still up later is killed.
        for _, _, proc, _, _ in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + TEARDOWN_SECONDS
        for _, _, proc, _, _ in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for name, _, _, log, _ in procs:
            if log is not None:
                tail = log.read_text(errors="replace")[-3000:]
                print(f"\n== lane {name} stopped by signal {signum}; its log ends:\n{tail}",
                      flush=True)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    # The side lanes start first, so their long set-up (a .deb build, a wheelhouse)
    # overlaps main from its first second. No cache plugin there: main alone writes
    # .pytest_cache (two processes writing one file could garble it).
    for name, paths in lanes:
        log = log_dir / f"{name}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen(pytest_argv(paths, [], ["-p", "no:cacheprovider", *extra]),
                                    cwd=root, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        print(f"== lane {name}: {' '.join(paths)} (pid {proc.pid}, log {log})", flush=True)
        procs.append((name, paths, proc, log, time.monotonic()))
    print(f"== lane main: the rest of the suite (without {' '.join(others)})", flush=True)
    main_cmd = pytest_argv([], others, extra)
    main_out = log_dir / "main.log"
    started = time.monotonic()
    with open(main_out, "wb") as copy:
        main = subprocess.Popen(main_cmd, cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        procs.append(("main", [], main, None, started))
        assert main.stdout is not None
        while chunk := os.read(main.stdout.fileno(), 65536):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            copy.write(chunk)
        main.wait()
    results = [LaneResult("main", [], main.returncode, main_out.read_text(errors="replace"),
                          time.monotonic() - started)]
    for name, paths, proc, log, t0 in procs[:-1]:
        proc.wait()
        assert log is not None
        output = log.read_text(errors="replace")
        print(f"\n== lane {name} output ({log})", flush=True)
        sys.stdout.write(output)
        results.append(LaneResult(name, paths, proc.returncode, output,
                                  time.monotonic() - t0))
    for r in results:
        r.counts = parse_counts(r.summary_line)
    lines, status = report(results)
    print("\n" + "\n".join(lines), flush=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lane", action="append", default=[], metavar="NAME=PATH[,PATH]",
                        help="a side lane: these paths in their own pytest process")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the project folder (default: this checkout)")
    parser.add_argument("extra", nargs="*", help="more pytest options, for every lane")
    args = parser.parse_args(argv)
    try:
        return run(args.lane, args.extra, args.root.resolve())
    except ValueError as e:
        print(f"pytest_lanes: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
