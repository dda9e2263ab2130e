"""A long randomized nemesis run over a namespace cluster (tests/nemesis/).

A seeded schedule of faults (kill -9 and restarts, SIGSTOP of agents, guardians,
whole VMs and the leader, partitions of several kinds, a coordinator's disk full
or failing) over 3 coordinators and 2 VMs with a steady probing client and a
sync-mode kvstore taking writes; then the whole-history checker. Prints the fault
count (per kind), each property's verdict, failover times (p50/max), the client's
outage windows, and on any violation the seed and schedule to replay. Exit 1 on a
violation. Needs root.

    .venv/bin/python bench/nemesis.py [--seed S] [--faults 200] [--kinds a,b,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # support_disk

from tests.nemesis.faults import FAULTS, default_kinds
from tests.nemesis.runner import run_nemesis


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=None, help="default: from the clock")
    ap.add_argument("--faults", type=int, default=200)
    ap.add_argument("--kinds", default="", help=f"comma list of {sorted(FAULTS)}")
    ap.add_argument("--without-disk", action="store_true",
                    help="leave out ENOSPC/EIO on a coordinator's data dir")
    ap.add_argument("--ttl", type=float, default=0.3)
    ap.add_argument("--interval", type=float, default=0.075)
    ap.add_argument("--keep", default="", help="keep logs in this folder")
    args = ap.parse_args(argv)
    if args.faults < 1:
        ap.error("--faults must be >= 1")
    seed = args.seed if args.seed is not None else int(time.time())
    kinds = [k for k in args.kinds.split(",") if k] or default_kinds()
    if args.without_disk:
        kinds = [k for k in kinds if k not in ("disk_enospc", "disk_eio")]
    unknown = [k for k in kinds if k not in FAULTS]
    if unknown:
        ap.error(f"unknown fault kind(s) {unknown}; known: {sorted(FAULTS)}")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vnfha-nemesis-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = run_nemesis(root, seed, args.faults, kinds, ttl=args.ttl, interval=args.interval)
    print(result.report())
    print(json.dumps({"seed": seed, "faults": len(result.history.faults), "kinds": kinds,
                      "wall_s": round(time.monotonic() - started, 1),
                      "verdicts": {k: ("ok" if not v else len(v))
                                   for k, v in result.verdicts.items()},
                      **result.figures}, indent=1))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
