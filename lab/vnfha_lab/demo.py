"""`vnfha demo`: a real active/standby failover on this machine, explained.

Builds network namespaces (3 coordinators, 2 VMs each with an agent and a
small TCP service, 1 client) on a private bridge in 198.18.0.0/24, shows the
client being served through the virtual IP, crashes the active VM, prints the
failover timeline and the outage the client saw, shows that losing the Raft
leader fails nothing over, and removes everything it made. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

INTRO = """\
vnfha demo
==========
A network function (VNF) is built from components on VMs. In an active/standby
pair only the active serves, on a virtual IP address (the VIP) that clients use.
If the active dies, the standby must take the VIP over fast, and the two must
never hold it at the same time ("split brain").

keepalived solves this with VRRP: the two VMs advertise to each other and the
standby takes over when adverts stop; cut the link between them and both take
the VIP. vnfha instead keeps the roles in a small replicated coordinator (3
nodes, Raft). Each VM's agent holds the active role, and the VIP, only while a
majority of coordinators keep renewing its lease, and every grant of the role
carries a fencing number (the epoch).

This demo builds, in network namespaces on this machine (nothing touches your
real network; addresses are from 198.18.0.0/24, reserved for benchmarks):

   c1 c2 c3   coordinators          198.18.0.1-3
   vm1        agent + service       198.18.0.11   member web-1 (priority 200)
   vm2        agent + service       198.18.0.12   member web-2 (priority 100)
   client     probes the VIP        198.18.0.50   every 10 ms
   VIP        198.18.0.100, port 8080
"""


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def _first(root: Path, names: list[str], pred) -> float | None:
    times = [d["ts"] for n in names for d in _json_lines(root / f"{n}.log")
             if isinstance(d.get("ts"), float) and pred(d)]
    return min(times) if times else None


def _table(g: Any) -> str:
    role = {1: "ACTIVE", 2: "standby"}
    health = {1: "unknown", 2: "healthy", 3: "unhealthy", 4: "LOST"}
    rows = [f"   group web   VIP {g.vip}   epoch {g.epoch}   active {g.active or '-'}"]
    for m in g.members:
        age = f"{m.lease_age_seconds * 1000:.0f} ms ago" if m.HasField(
            "lease_age_seconds") else "-"
        rows.append(f"     {m.name:6s} on {m.node:4s} {role.get(m.role, '?'):8s} "
                    f"{health.get(m.health, '?'):9s} heard {age}")
    return "\n".join(rows)


def _answers(probe: Path) -> list[Any]:
    from vnfha_lab.probe import load_attempts

    return load_attempts(str(probe))


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("error: the demo builds network namespaces: run it as root on Linux with "
              "iproute2 (bash scripts/demo.sh installs what is missing)", file=sys.stderr)
        return 2
    from vnfha_lab.labcluster import LabCluster, VipChecker
    from vnfha_lab.netlab import Lab
    from vnfha_lab.probe import outage

    # SIGTERM unwinds like Ctrl-C, so the namespaces and processes are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="vnfha-demo-"))
    print(INTRO)
    code = 1
    with Lab() as lab:
        c = LabCluster(lab, root, ttl=args.ttl, interval=args.interval)
        try:
            print("1. Starting the 3 coordinators; they elect a Raft leader ...")
            leader = c.start_coordinators()
            print(f"   leader: {leader}")
            print("   every process proves who it is with its own certificate (mTLS; "
                  "docs/security.md)\n")
            print("2. Starting vm1 and vm2 (agent + service). The coordinators make the "
                  "highest-priority\n   healthy member active; its agent adds the VIP ...")
            c.start_service("vm1")
            c.start_agent("vm1", 200)
            c.wait_active("web-1")
            c.start_service("vm2")
            c.start_agent("vm2", 100)
            c.wait(lambda: (g := c.group()) is not None and len(g.members) == 2
                   and all(m.health == 2 for m in g.members), 20, "both members healthy")
            c.wait(lambda: c.vip_holders() == {"vm1"}, 10, "the VIP on vm1")
            print(_table(c.group()))
            print(f"   VIP configured on: {', '.join(sorted(c.vip_holders()))}\n")

            print("3. The client connects to 198.18.0.100:8080 every 10 ms ...")
            checker = VipChecker(c).start()
            probe = c.start_probe(duration=60)
            c.wait(lambda: any(a.ok for a in _answers(probe)), 10, "a first answer")
            time.sleep(1.0)
            ok = [a for a in _answers(probe) if a.ok]
            print(f"   {len(ok)} answers so far, all from: "
                  f"{', '.join(sorted({a.who for a in ok}))}\n")

            print("4. FAULT: vm1 crashes (its link goes dark, every process in it is "
                  "killed with SIGKILL) ...")
            fault = c.crash_vm("vm1")
            c.wait(lambda: any(a.ok and a.who == "vm2" and a.at > fault
                               for a in _answers(probe)), 15, "the client served by vm2")
            time.sleep(0.5)
            expired = _first(root, c.cids, lambda d: d.get("node") == "vm1" and "expired on a"
                             in d.get("msg", ""))
            committed = _first(root, c.cids, lambda d: d.get("msg") == "promoted"
                               and d.get("member") == "web-2" and d["ts"] > fault)
            claimed = _first(root, ["vm2-agent"], lambda d: d.get("msg") == "vip added"
                             and d["ts"] > fault)
            served = next(a.at for a in _answers(probe) if a.ok and a.who == "vm2"
                          and a.at > fault)

            def ms(t: float | None) -> str:
                return "     ?" if t is None else f"{(t - fault) * 1000:6.0f}"

            print("   timeline, ms after the crash:")
            print(f"   {ms(fault)}  vm1 crashes; its keepalives stop")
            print(f"   {ms(expired)}  a majority of coordinators have not heard vm1 for the "
                  f"lease TTL ({args.ttl * 1000:.0f} ms)")
            print(f"   {ms(committed)}  'promote web-2, epoch 2' committed through Raft")
            print(f"   {ms(claimed)}  vm2's agent adds the VIP and sends gratuitous ARPs")
            print(f"   {ms(served)}  the client gets its first answer from vm2")
            took = outage(_answers(probe), fault, "vm2")
            print(f"   outage seen by the client: {took * 1000:.0f} ms" if took else "")
            print(_table(c.group()))
            print(f"   VIP configured on: {', '.join(sorted(c.vip_holders())) or 'nobody'} "
                  "(vm1's agent was killed with the VM; its guardian, a separate\n"
                  "    process watching the agent's lease, removed vm1's copy at once)\n")

            print("5. FAULT: kill -9 the Raft leader coordinator ...")
            leader = c.leader()
            epoch = c.group().epoch
            c.kill(leader)
            t0 = time.monotonic()
            new_leader = c.wait(c.leader, 10, "a new leader")
            print(f"   {leader} killed; {new_leader} leads after "
                  f"{(time.monotonic() - t0) * 1000:.0f} ms")
            before = len([a for a in _answers(probe) if not a.ok])
            time.sleep(4 * args.ttl)
            g = c.group()
            lost = len([a for a in _answers(probe) if not a.ok]) - before
            same = g.active == "web-2" and g.epoch == epoch
            print(f"   after {4 * args.ttl:.1f} s: active {g.active}, epoch {g.epoch} "
                  f"({'no failover' if same else 'UNEXPECTED CHANGE'}); "
                  f"client requests failed meanwhile: {lost}")
            print("   (the agents' leases are renewed by the 2 surviving coordinators)\n")

            log = checker.stop()
            live = log.max_holders
            print(f"6. The address checker polled every VM {log.polls} times: at most {live} "
                  "VM held the VIP at once.")
            print("\n   Event history (vnfha events):")
            for e in c.events():
                if e.kind in ("promoted", "demoted", "released", "health_changed"):
                    who = f"{e.member}@{e.node}"
                    print(f"   #{e.seq:<3d} {e.kind:15s} {who:12s} epoch {e.epoch:<3d} "
                          f"{e.reason}")
            code = 0 if same and live == 1 else 1
        except (TimeoutError, RuntimeError) as e:
            print(f"error: {e}\n{c.logs_tail()}", file=sys.stderr)
        finally:
            print("\nCleaning up: stopping every process, deleting the namespaces"
                  + (f"; logs kept in {root}" if args.keep else "") + ".")
            c.close()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return code


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="vnfha demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ttl", type=float, default=0.25, help="lease TTL in seconds (0.25)")
    ap.add_argument("--interval", type=float, default=0.06,
                    help="keepalive interval in seconds (0.06)")
    ap.add_argument("--keep", action="store_true", help="keep the logs")
    return run(ap.parse_args(argv))
