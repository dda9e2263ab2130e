"""Run one benchmark on an older revision and on this tree, in one invocation.

A refactoring is judged by "no regression, side by side with the previous main in one
run": both codes measured on the same machine at the same time of day, under the same
load. This runs a bench script of this repository (its arguments after `--`) on the code
of `--before REV` and on the working tree, alternating `--repeat` times (before, after,
before, after, ...) so drifting background load falls on both sides alike, and prints
every run's JSON plus the load average around each.

The old code runs from a `git archive` export of REV: `coordinator/`, `agents/`,
`protos/`, `lab/`, `bench/` and `tests/`, mapped onto `vnfha.*` and `vnfha_lab` by a
PYTHONPATH that comes before the installed (editable) package, so the old bench script,
the old harness and every process they start (coordinators and agents inherit the
environment) are the old code. The same virtualenv serves both, so both sides use the
same dependency versions. Needs what the bench needs (root for the namespace benches).

    .venv/bin/python bench/side_by_side.py --before aa03b25 [--repeat 2] \\
        -- bench/failover.py --rounds 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Folders of a revision that its benches may need.
EXPORTED = ("coordinator", "agents", "protos", "lab", "bench", "tests")


def export_revision(rev: str, dest: Path) -> Path:
    """The code of `rev` under `dest/src`, importable from `dest` as `vnfha.*` and
    `vnfha_lab`; returns `dest/src` (where its bench scripts are)."""
    src = dest / "src"
    src.mkdir(parents=True)
    present = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", rev],
                             check=True, capture_output=True, text=True).stdout.split()
    folders = [f for f in EXPORTED if f in present]
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *folders],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    pkg = dest / "vnfha"
    pkg.mkdir()
    (pkg / "coordinator").symlink_to(src / "coordinator")
    (pkg / "agents").symlink_to(src / "agents")
    (pkg / "v1").symlink_to(src / "protos" / "vnfha" / "v1")
    if (src / "lab" / "vnfha_lab").is_dir():
        (dest / "vnfha_lab").symlink_to(src / "lab" / "vnfha_lab")
    return src


def last_json(stdout: str) -> Any:
    """The bench's result: the last top-level JSON object in its output (benches print
    progress lines before it)."""
    lines = stdout.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                continue
    raise ValueError("the bench printed no JSON result")


def run(label: str, script: Path, args: list[str], pythonpath: Path | None,
        timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    else:
        env.pop("PYTHONPATH", None)
    load = os.getloadavg()[0]
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(script), *args], env=env,
                              capture_output=True, text=True, timeout=timeout,
                              cwd=script.parents[1], check=False)
    except subprocess.TimeoutExpired:
        entry = {"code": label, "exit": None, "error": f"no result within {timeout:.0f} s"}
        print(json.dumps(entry), file=sys.stderr)
        return entry
    entry: dict[str, Any] = {"code": label, "exit": proc.returncode,
                             "seconds": round(time.monotonic() - started, 1),
                             "load_average_start": round(load, 2),
                             "load_average_end": round(os.getloadavg()[0], 2)}
    try:
        entry["result"] = last_json(proc.stdout)
    except ValueError as e:
        said = [ln for ln in proc.stderr.splitlines() if ln.startswith(("error", "Traceback"))]
        entry["error"] = f"{e}; " + (said[0][:300] if said else f"stderr: {proc.stderr[-300:]}")
    print(json.dumps(entry), file=sys.stderr)  # progress, and kept if a later run fails
    return entry


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, metavar="REV",
                    help="the older revision (e.g. the previous main)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="pairs of runs, alternating before/after (default 1)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("bench", help="the bench script, relative to the repository root")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (after --)")
    a = ap.parse_args()
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    bench_args = a.args[1:] if a.args[:1] == ["--"] else a.args
    rel = Path(a.bench)
    if rel.is_absolute() or not (ROOT / rel).is_file():
        ap.error(f"{a.bench}: not a script of this repository (give it relative to {ROOT})")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip()
    runs = []
    with tempfile.TemporaryDirectory(prefix="vnfha-sbs-") as tmp:
        old_src = export_revision(a.before, Path(tmp))
        if not (old_src / rel).is_file():
            ap.error(f"{a.bench} does not exist at {a.before}")
        for _ in range(a.repeat):
            runs.append(run(f"before ({a.before})", old_src / rel, bench_args, Path(tmp),
                            a.timeout))
            runs.append(run(f"after ({head or 'worktree'})", ROOT / rel, bench_args, None,
                            a.timeout))
    print(json.dumps({"benchmark": "side_by_side", "bench": str(rel), "args": bench_args,
                      "before": a.before, "after": head, "runs": runs,
                      "cpus": os.cpu_count()}, indent=2))
    return 0 if all(r["exit"] == 0 and "result" in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
