"""Frozen VM: the active's agent and guardian both SIGSTOPped, the kernel running.

The demo's topology (lab/vnfha_lab/labcluster.py): 3 coordinators, 2 VMs, a client
probing the VIP every 10 ms. Each trial freezes the active's agent (its process
group) and its guardian for `--freeze` seconds (not the VM: its TCP service and
kernel keep running, as under memory pressure or a cgroup freeze), then thaws them
and waits until the other VM holds the VIP alone and the thawed one is a healthy
standby again; the next trial freezes the new active. Per trial it prints:

* dual-holder time: seconds during which both VMs *would answer* for the VIP
  (address configured and kernel lease live; the e2e checker's definition), and,
  for comparison, during which both merely had the address configured;
* client connections answered by the frozen VM after its lease end (frozen_at +
  ttl: the lease was last renewed by a round sent before the freeze);
* whether the frozen VM answered an ARP request sent after its lease end.

    .venv/bin/python bench/freeze.py [--trials 10] [--freeze 3] [--ttl 0.25]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vnfha_lab.labcluster import HolderLog, LabCluster, VipChecker
from vnfha_lab.netlab import Lab, arp_repliers, pids_in_netns
from vnfha_lab.probe import load_attempts


class AddressOnly:
    """The cluster as the old checker saw it: a VM holds if the address is there."""

    def __init__(self, c: LabCluster) -> None:
        self.c = c
        self.vms = c.vms
        self.crashed = c.crashed

    def vip_holders(self) -> set[str]:
        out = set()
        for vm in self.vms:
            try:
                if self.c.vip in self.c.hosts[vm].addresses():
                    out.add(vm)
            except Exception:
                continue
        return out


def dual_seconds(log: HolderLog, end: float) -> float:
    """Total time with more than one holder, from the checker's change log."""
    total = 0.0
    for i, (t, holders) in enumerate(log.changes):
        if len(holders) > 1:
            nxt = log.changes[i + 1][0] if i + 1 < len(log.changes) else end
            total += nxt - t
    return total


def guardian_pid(c: LabCluster, vm: str) -> int:
    for pid in pids_in_netns(c.hosts[vm].netns):
        try:
            if b"vnfha.agents.guardian" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise RuntimeError(f"no guardian in {vm}")


def trial(c: LabCluster, probe: Path, active: str, standby: str, freeze: float,
          member: dict[str, str]) -> dict[str, Any]:
    live = VipChecker(c, max_seconds=60).start()
    addr = VipChecker(AddressOnly(c), max_seconds=60).start()  # type: ignore[arg-type]
    guardian = guardian_pid(c, active)
    frozen_at = c.signal(f"{active}-agent", signal.SIGSTOP)
    os.kill(guardian, signal.SIGSTOP)
    lease_end = frozen_at + c.ttl
    try:
        time.sleep(max(0.0, lease_end + 0.2 - time.time()))
        client = c.hosts["client"]
        arp = client.call(arp_repliers, c.vip_addr, client.ip4)
        time.sleep(max(0.0, frozen_at + freeze - time.time()))
    finally:
        c.signal(f"{active}-agent", signal.SIGCONT)
        os.kill(guardian, signal.SIGCONT)
    c.wait(lambda: c.vip_holders() == {standby}, 15, f"the VIP on {standby} alone")
    c.wait(lambda: (g := c.group()) is not None and any(
        m.name == member[active] and m.health == 2 and not m.quarantined
        for m in g.members), 20, f"{active} a healthy standby again")
    end = time.time()
    live_log, addr_log = live.stop(), addr.stop()
    late = [a for a in load_attempts(str(probe))
            if a.ok and a.who == active and lease_end <= a.at <= end]
    return {"frozen": active,
            "dual_holder_s": round(dual_seconds(live_log, end), 3),
            "dual_address_s": round(dual_seconds(addr_log, end), 3),
            "answered_after_lease_end": len(late),
            "arp_after_lease_end": c.hosts[active].mac in arp}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--freeze", type=float, default=3.0)
    ap.add_argument("--ttl", type=float, default=0.25)
    ap.add_argument("--interval", type=float, default=0.06)
    args = ap.parse_args()
    if not 1 <= args.trials <= 100 or not 0.5 <= args.freeze <= 30:
        print("error: --trials must be 1..100 and --freeze 0.5..30 s", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="vnfha-bench-"))
    results = []
    with Lab() as lab:
        c = LabCluster(lab, root, ttl=args.ttl, interval=args.interval, stabilization=0.5)
        try:
            c.start_pair()
            probe = c.start_probe(duration=(args.freeze + 30) * args.trials, interval=0.01,
                                  timeout=0.02)
            member = {"vm1": "web-1", "vm2": "web-2"}
            active, standby = "vm1", "vm2"
            c.wait(lambda: c.vip_holders() == {active}, 10, "the VIP on vm1")
            for i in range(args.trials):
                time.sleep(0.5)
                r = trial(c, probe, active, standby, args.freeze, member)
                results.append(r)
                print(f"trial {i + 1}: froze {active}: dual holders {r['dual_holder_s']:.3f} s "
                      f"(address on both {r['dual_address_s']:.3f} s), "
                      f"{r['answered_after_lease_end']} connections and "
                      f"{'an' if r['arp_after_lease_end'] else 'no'} ARP answer from the "
                      f"frozen VM after its lease end", file=sys.stderr)
                active, standby = standby, active
        except Exception as e:
            print(f"error: {e}\n{c.logs_tail()}", file=sys.stderr)
            return 1
        finally:
            c.close()
    print(json.dumps({
        "benchmark": "freeze",
        "settings": {"ttl_s": args.ttl, "keepalive_interval_s": args.interval,
                     "freeze_s": args.freeze, "kernel_lease": c.kernel_lease},
        "trials": results,
        "max_dual_holder_s": max(r["dual_holder_s"] for r in results),
        "total_answered_after_lease_end": sum(r["answered_after_lease_end"] for r in results),
        "arp_after_lease_end": sum(r["arp_after_lease_end"] for r in results),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
