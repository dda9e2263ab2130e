"""A fresh cluster with health checks: how long until it has an active, and until every
member is eligible (healthy, not quarantined)?

One real coordinator (memory backend, default leases: stabilization 10 s) and two real
agents on loopback (vip.manage false: roles only, no addresses touched), each member
with an exec health check that passes from the start (rise 2, interval 1 s by default).
Each agent's first reports are therefore `unhealthy` until `rise` checks passed: that is
the start of every real deployment. The status is polled every 50 ms (bounded by
--timeout) and the figures printed as JSON, with whether any member was ever seen
quarantined.

    .venv/bin/python bench/fresh_start.py [--runs 3] [--timeout 60]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vnfha.coordinator.cli import AdminClient, Unreachable, status_to_dict
from vnfha.v1 import admin_pb2

VNFHA = str(Path(sys.executable).with_name("vnfha"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(timeout: float) -> dict[str, object]:
    ep = f"127.0.0.1:{free_port()}"
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="vnfha-fresh-") as tmp:
        d = Path(tmp)
        (d / "c1.yaml").write_text(
            f"node_id: c1\ncluster:\n  members:\n    - {{id: c1, api: {ep}}}\n"
            "store: {backend: memory}\ngroups:\n  - {name: web, vip: 198.18.0.100/24}\n")
        for i, prio in ((1, 200), (2, 100)):
            (d / f"vm{i}.yaml").write_text(
                f"node: vm{i}\ncoordinators: [{ep}]\nvip: {{manage: false}}\n"
                f"members:\n  - group: web\n    member: web-{i}\n    priority: {prio}\n"
                "    checks:\n      - {kind: exec, argv: [/bin/true]}\n")
        client = AdminClient([ep], timeout=2.0)
        try:
            procs.append(subprocess.Popen([VNFHA, "coordinator", "--config", str(d / "c1.yaml")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + timeout
            while True:  # the coordinator answers: start the clock and the agents
                try:
                    client.call("GetStatus", admin_pb2.GetStatusRequest())
                    break
                except Unreachable:
                    if time.monotonic() > deadline:
                        raise SystemExit("coordinator did not start") from None
                    time.sleep(0.05)
            start = time.monotonic()
            for i in (1, 2):
                procs.append(subprocess.Popen(
                    [VNFHA, "agent", "--config", str(d / f"vm{i}.yaml")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            first_active = all_eligible = None
            quarantined_seen: set[str] = set()
            while time.monotonic() < deadline:
                _, resp = client.call("GetStatus", admin_pb2.GetStatusRequest())
                (web,) = status_to_dict(resp)["groups"]
                now = time.monotonic() - start
                quarantined_seen |= {m["name"] for m in web["members"] if m["quarantined"]}
                if web["active"] and first_active is None:
                    first_active = now
                if (len(web["members"]) == 2 and all(
                        m["health"] == "healthy" and not m["quarantined"]
                        for m in web["members"])):
                    all_eligible = now
                    break
                time.sleep(0.05)
            return {"first_active_s": round(first_active, 2) if first_active else None,
                    "both_eligible_s": round(all_eligible, 2) if all_eligible else None,
                    "quarantined_seen": sorted(quarantined_seen)}
        finally:
            client.close()
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    if not 1 <= args.runs <= 20 or not 1 <= args.timeout <= 300:
        ap.error("--runs must be 1..20 and --timeout 1..300")
    print(json.dumps([one_run(args.timeout) for _ in range(args.runs)], indent=1))


if __name__ == "__main__":
    main()
