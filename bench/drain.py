"""Client-observed traffic gap of a stopped agent (drain), side by side with a planned
switchover and a crashed agent (SIGKILL).

Topology: lab/vnfha_lab/labcluster.py (3 coordinators, 2 VMs with an agent and a TCP
service each, a client probing the VIP every 10 ms, each attempt bounded by 20 ms).
Each round, with A active and S standby:

* drain: SIGTERM to A's agent process alone (systemd's KillMode=mixed); gap = last
  answer from A -> first answer from S; A's agent is started again;
* switchover back to A (`vnfha switchover`, the AdminService call); gap likewise;
* crash: SIGKILL to A's agent; gap = last answer -> first from S (lease expiry;
  A keeps answering until its own lease ends, so this gap is not the whole story);
  A's agent is started again and waits out its quarantine.

Also printed: signal (or command) -> first answer from the new active.

A checker polls both VMs' addresses throughout and counts dual holders. Prints JSON.
Needs root.

    .venv/bin/python bench/drain.py [--rounds 5] [--ttl 0.25] [--interval 0.06]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vnfha.v1 import admin_pb2
from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.netlab import Lab
from vnfha_lab.probe import gap, load_attempts

MEMBER = {"vm1": "web-1", "vm2": "web-2"}
PRIORITY = {"vm1": 200, "vm2": 100}


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": round(statistics.median(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1)}


def served(c: LabCluster, probe: Path, vm: str, after: float) -> None:
    c.wait(lambda: any(a.ok and a.who == vm and a.at > after
                       for a in load_attempts(str(probe))), 15, f"client served by {vm}")


def ready(c: LabCluster, vm: str) -> None:
    """vm's agent registered again, its member healthy and eligible."""
    def ok() -> bool:
        st = c.status()
        if st is None:
            return False
        node = next((n for n in st.nodes if n.name == vm), None)
        g = next((g for g in st.groups if g.name == "web"), None)
        return (node is not None and not node.stopped and g is not None
                and any(m.name == MEMBER[vm] and m.health == 2 and not m.quarantined
                        for m in g.members))
    # Held for a second: an agent starting on a loaded host can miss its first lease
    # (then it is quarantined for the stabilization time) after looking fine.
    since: list[float] = []

    def steady() -> bool:
        if not ok():
            since.clear()
            return False
        since[:1] = since[:1] or [time.time()]
        return time.time() - since[0] >= 1.0
    c.wait(steady, 30, f"{vm} healthy and eligible again")


def first_answer(probe: Path, vm: str, after: float) -> float:
    return next(a.at for a in load_attempts(str(probe)) if a.ok and a.who == vm
                and a.at >= after)


def restart_agent(c: LabCluster, vm: str) -> None:
    c.procs.pop(f"{vm}-agent", None)
    c.start_agent(vm, PRIORITY[vm])
    ready(c, vm)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ttl", type=float, default=0.25)
    ap.add_argument("--interval", type=float, default=0.06)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="vnfha-bench-drain-"))
    drain: list[float] = []
    switch: list[float] = []
    crash: list[float] = []
    # From the signal (command) to the first answer from the new active.
    drain_total: list[float] = []
    switch_total: list[float] = []
    crash_total: list[float] = []
    with Lab() as lab:
        c = LabCluster(lab, root, ttl=args.ttl, interval=args.interval, stabilization=0.5)
        try:
            c.start_pair()
            checker = VipChecker(c, max_seconds=90 * args.rounds).start()
            probe = c.start_probe(duration=90 * args.rounds, interval=0.01, timeout=0.02)
            a, s = "vm1", "vm2"
            served(c, probe, a, 0)  # the client is up and answered before the first fault
            for i in range(args.rounds):
                c.wait(lambda a=a: c.vip_holders() == {a}, 10, f"VIP on {a}")
                time.sleep(0.5)
                # 1. drain: SIGTERM to the agent process only.
                proc = c.procs[f"{a}-agent"]
                at = time.time()
                os.kill(proc.pid, signal.SIGTERM)
                served(c, probe, s, at)
                drain.append(gap(load_attempts(str(probe)), s, at))
                drain_total.append(first_answer(probe, s, at) - at)
                proc.wait(timeout=10)
                restart_agent(c, a)
                time.sleep(0.5)
                # 2. planned switchover back to a.
                asked = time.time()
                resp = c.call("Switchover", admin_pb2.SwitchoverRequest(
                    group="web", to_member=MEMBER[a]))
                assert resp.completed, resp
                served(c, probe, a, asked)
                switch.append(gap(load_attempts(str(probe)), a, asked))
                switch_total.append(first_answer(probe, a, asked) - asked)
                time.sleep(0.5)
                # 3. crash: SIGKILL of a's agent; s takes over at the lease expiry.
                fault = c.kill(f"{a}-agent")
                served(c, probe, s, fault)
                crash.append(gap(load_attempts(str(probe)), s, fault))
                crash_total.append(first_answer(probe, s, fault) - fault)
                restart_agent(c, a)
                print(f"round {i + 1}: drain {drain[-1] * 1000:.0f} ms, switchover "
                      f"{switch[-1] * 1000:.0f} ms, crash {crash[-1] * 1000:.0f} ms",
                      file=sys.stderr)
                a, s = s, a
            log = checker.stop()
            print(json.dumps({
                "benchmark": "drain",
                "settings": {"ttl_s": args.ttl, "keepalive_interval_s": args.interval,
                             "probe_interval_s": 0.01, "probe_timeout_s": 0.02},
                "drain_sigterm": summary(drain),
                "planned_switchover": summary(switch),
                "crash_sigkill": summary(crash),
                "signal_to_new_active": {"drain_sigterm": summary(drain_total),
                                         "planned_switchover": summary(switch_total),
                                         "crash_sigkill": summary(crash_total)},
                "drain_over_switchover_p50": round(statistics.median(drain)
                                                   / statistics.median(switch), 2),
                "max_vip_holders": log.max_holders,
            }, indent=2))
        except Exception as e:
            print(f"error: {e}\n{c.logs_tail()}", file=sys.stderr)
            return 1
        finally:
            c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
