"""Client-observed outage of crash failovers and planned switchovers.

The demo's topology (lab/vnfha_lab/labcluster.py): 3 coordinators, 2 VMs with
an agent and a TCP service each, a client probing the VIP every 10 ms (each
attempt bounded by 20 ms). Each round crashes the active VM (link down +
SIGKILL of everything in it), measures fault -> first answer from the new
active, brings the crashed VM back, then switches over to it (planned) and
measures the gap between the last answer of the old active and the first of
the new one (vnfha's default lease settings unless given). A checker polls
both VMs' addresses throughout and counts dual holders. Prints JSON. Needs root.

    .venv/bin/python bench/failover.py [--rounds 10] [--ttl 0.25] [--interval 0.06]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vnfha.v1 import admin_pb2
from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.netlab import Lab
from vnfha_lab.probe import gap, load_attempts, outage


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]

    return {"n": len(values), "p50_ms": round(statistics.median(values) * 1000, 1),
            "p90_ms": round(pct(0.9) * 1000, 1), "max_ms": round(max(values) * 1000, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--ttl", type=float, default=0.25)
    ap.add_argument("--interval", type=float, default=0.06)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the lab's namespaces and processes are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="vnfha-bench-"))
    crash: list[float] = []
    switch: list[float] = []
    with Lab() as lab:
        c = LabCluster(lab, root, ttl=args.ttl, interval=args.interval, stabilization=0.5)
        try:
            c.start_pair()
            checker = VipChecker(c, max_seconds=60 * args.rounds).start()
            probe = c.start_probe(duration=60 * args.rounds, interval=0.01, timeout=0.02)
            member = {"vm1": "web-1", "vm2": "web-2"}
            active, standby = "vm1", "vm2"
            for i in range(args.rounds):
                c.wait(lambda a=active: c.vip_holders() - c.crashed == {a}, 10, "VIP held")
                time.sleep(0.5)
                fault = c.crash_vm(active)
                c.wait(lambda s=standby, f=fault: any(
                    a.ok and a.who == s and a.at > f for a in load_attempts(str(probe))),
                    15, f"round {i}: client served by {standby}")
                crash.append(outage(load_attempts(str(probe)), fault, standby))
                # Bring the crashed VM back as after a reboot: its stale VIP is gone
                # (the kernel lifetime backstop removes it), then it rejoins as a standby.
                c.wait(lambda a=active: a not in c.vip_holders(), 5,
                       "the dead VM's VIP dropped by the kernel lifetime")
                c.lab.link_up(c.hosts[active])
                c.crashed.discard(active)
                c.start_service(active)
                c.start_agent(active, 200 if active == "vm1" else 100)
                c.wait(lambda a=active: (g := c.group()) is not None and any(
                    m.name == member[a] and m.health == 2 and not m.quarantined
                    for m in g.members), 20, f"{active} healthy and stable again")
                time.sleep(0.5)
                asked = time.time()
                resp = c.call("Switchover", admin_pb2.SwitchoverRequest(
                    group="web", to_member=member[active]))
                assert resp.completed, resp
                c.wait(lambda a=active, t=asked: any(
                    x.ok and x.who == a and x.at > t for x in load_attempts(str(probe))),
                    10, "client served after switchover")
                switch.append(gap(load_attempts(str(probe)), active, asked))
                print(f"round {i + 1}: crash {crash[-1] * 1000:.0f} ms, "
                      f"switchover {switch[-1] * 1000:.0f} ms", file=sys.stderr)
            log = checker.stop()
            print(json.dumps({
                "benchmark": "failover",
                "settings": {"ttl_s": args.ttl, "keepalive_interval_s": args.interval,
                             "agent_drift": 0.01, "agent_margin_s": 0.05,
                             "raft_election_timeout_s": [0.3, 0.6],
                             "probe_interval_s": 0.01, "probe_timeout_s": 0.02},
                "crash_failover": summary(crash),
                "planned_switchover": summary(switch),
                "dual_holders": {"max_live_holders": log.max_live_holders,
                                 "max_holders_including_dead_vms": log.max_holders,
                                 "polls": log.polls},
            }, indent=2))
        except Exception as e:
            print(f"error: {e}\n{c.logs_tail()}", file=sys.stderr)
            return 1
        finally:
            c.close()
    if args.keep:
        print(f"logs kept in {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
