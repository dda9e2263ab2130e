"""Client-visible outage during a total coordinator outage, failsafe off and on, in one run.

The demo's topology (lab/vnfha_lab/labcluster.py): 3 coordinators, 2 VMs (agent + TCP
service), a client probing the VIP every 10 ms (each attempt bounded by --timeout).
For each mode (failsafe off, then on with --lease) a fresh lab is built, every
coordinator is killed (SIGKILL) for --outage seconds, then restarted; the bench waits
--settle seconds after a leader is back. It prints, per mode: the seconds of failed
probes from the fault to the end (the client-visible outage), the failed attempts, the
active and epoch before and after, the most VIP holders seen at once (the checker polls
every VM), and the role changes the active's agent logged. JSON. Needs root.

    .venv/bin/python bench/failsafe.py [--outage 30] [--lease 1.0] [--ttl 0.25]
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.netlab import Lab
from vnfha_lab.probe import load_attempts


def failed_seconds(attempts: list[Any], start: float) -> tuple[float, int]:
    """Seconds between consecutive attempts from `start` on whose later one failed (the
    client-visible outage), and how many attempts failed."""
    rows = [a for a in attempts if a.at >= start]
    total, failed = 0.0, 0
    for prev, cur in itertools.pairwise(rows):
        if not cur.ok:
            total += cur.at - prev.at
            failed += 1
    return total, failed


def run_mode(root: Path, lease: float, args: argparse.Namespace) -> dict[str, Any]:
    with Lab() as lab:
        c = LabCluster(lab, root, ttl=args.ttl, interval=args.interval)
        try:
            c.start_pair(timeout=60)
            # Under load the first active may already have lost a lease: follow whoever
            # holds the role once one VM alone holds the VIP.
            c.wait(lambda: len(c.vip_holders()) == 1 and (g := c.group()) is not None
                   and g.active and {f"vm{g.active[4:]}"} == c.vip_holders(), 60,
                   "one VM holding the VIP as the active")
            holder = c.group().active
            vm = f"vm{holder[4:]}"
            c.set_failsafe(lease)  # off (0) explicitly too: a new cluster has it on
            total = args.outage + args.settle + 40
            checker = VipChecker(c, max_seconds=total).start()
            probe = c.start_probe(duration=total, interval=0.01, timeout=args.timeout)
            c.wait(lambda: any(a.ok for a in load_attempts(str(probe))), 10, "first answer")
            before = c.group()
            fault = time.time()
            for cid in c.cids:
                c.kill(cid)
            time.sleep(args.outage)
            for cid in c.cids:
                c.start_coordinator(cid)
            back = time.time()
            c.wait(lambda: c.leader(), 60, "a leader again")
            leader_back = time.time() - back
            time.sleep(args.settle)
            log = checker.stop()
            end = time.time()
            attempts = [a for a in load_attempts(str(probe)) if a.at <= end]
            outage, failed = failed_seconds(attempts, fault)
            after = c.group()
            changes = [r for r in c.role_changes(vm) if r["ts"] > fault]
            return {
                "failsafe_lease_s": lease,
                "coordinator_outage_s": round(back - fault, 2),
                "leader_back_after_restart_s": round(leader_back, 2),
                "client_outage_s": round(outage, 3),
                "failed_attempts": failed,
                "attempts": len([a for a in attempts if a.at >= fault]),
                "active_before": f"{before.active}@{before.epoch}",
                "active_after": f"{after.active}@{after.epoch}" if after else None,
                "max_vip_holders": log.max_holders,
                "active_vm_role_changes": [f"{r['role']}@{r['epoch']}: {r['reason']}"
                                           for r in changes],
            }
        finally:
            c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outage", type=float, default=30.0, help="seconds without coordinators")
    ap.add_argument("--lease", type=float, default=1.0, help="failsafe lease (seconds)")
    ap.add_argument("--ttl", type=float, default=0.25)
    ap.add_argument("--interval", type=float, default=0.06)
    ap.add_argument("--timeout", type=float, default=0.25,
                    help="a probe attempt fails without an answer within this")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds watched after the coordinators are back")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = {}
    for name, lease in (("failsafe_off", 0.0), ("failsafe_on", args.lease)):
        root = Path(tempfile.mkdtemp(prefix=f"vnfha-bench-{name}-"))
        out[name] = run_mode(root, lease, args)
        print(json.dumps({name: out[name]}), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
