"""Soak: no false failover while nothing fails and a CPU hog keeps a core busy.

The demo's topology with vnfha's default lease settings runs for --minutes
while one busy-looping process per --hogs competes for the CPU. Counts what
must stay zero: promotions, demotions and agent role drops after the start,
and client probes that failed. Prints JSON. Needs root.

    .venv/bin/python bench/soak.py [--minutes 10] [--hogs 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import signal
import sys
import tempfile
import time
from pathlib import Path

from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.netlab import Lab
from vnfha_lab.probe import load_attempts


def _hog(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:  # bounded by time
        x += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--hogs", type=int, default=1)
    ap.add_argument("--ttl", type=float, default=0.25)
    ap.add_argument("--interval", type=float, default=0.06)
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the lab's namespaces and processes are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seconds = args.minutes * 60
    root = Path(tempfile.mkdtemp(prefix="vnfha-soak-"))
    with Lab() as lab:
        c = LabCluster(lab, root, ttl=args.ttl, interval=args.interval)
        try:
            c.start_pair()
            time.sleep(1)
            start = time.time()
            epoch = c.group().epoch
            hogs = [mp.Process(target=_hog, args=(start + seconds,)) for _ in range(args.hogs)]
            for h in hogs:
                h.start()
            checker = VipChecker(c, interval=0.05, max_seconds=seconds + 10).start()
            probe = c.start_probe(duration=seconds, interval=0.05, timeout=0.2)
            time.sleep(seconds)
            for h in hogs:
                h.join(timeout=5)
            log = checker.stop()
            g = c.group()
            changes = [e for e in c.events() if e.time.ToNanoseconds() / 1e9 > start
                       and e.kind in ("promoted", "demoted", "health_changed")]
            drops = [r for vm in c.vms for r in c.role_changes(vm)
                     if r["ts"] > start and r["role"] != "active"]
            attempts = [a for a in load_attempts(str(probe)) if a.at > start]
            print(json.dumps({
                "benchmark": "soak", "minutes": args.minutes, "cpu_hogs": args.hogs,
                "ttl_s": args.ttl, "keepalive_interval_s": args.interval,
                "epoch_before": epoch, "epoch_after": g.epoch, "active_after": g.active,
                "role_events_after_start": [f"{e.kind} {e.member} {e.reason}"
                                            for e in changes],
                "agent_role_drops": len(drops),
                "probes": len(attempts), "probe_failures": sum(not a.ok for a in attempts),
                "max_vip_holders": log.max_holders,
            }, indent=2))
            return 0 if not changes and not drops else 1
        except Exception as e:
            print(f"error: {e}\n{c.logs_tail()}", file=sys.stderr)
            return 1
        finally:
            c.close()


if __name__ == "__main__":
    sys.exit(main())
