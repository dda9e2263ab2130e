"""How long `vnfha switchover` takes as an operator sees it, beside `vnfha status`.

The namespace lab of the e2e tests (lab/vnfha_lab/labcluster.py: 3 coordinators on Raft,
2 VMs with agents, a TCP service and a real VIP, a client probing the VIP every 5 ms).
Each round runs the real command as a fresh process, the way a script does, switching
the group to the other VM, and measures:

* command start -> return (exit 0 means the new active holds the VIP: docs/cli.md);
* command start -> first answer from the new active on the VIP (the client's probe);
* the phases in between: start -> demotion committed (interpreter, imports, channel,
  the commit), -> promotion committed (the old active's release reported), -> VIP
  claimed by the new active's agent, -> command returned (its report, the answer, exit);

and, beside them, the start-up of the tool alone (`vnfha --version`) and of a read
(`vnfha status`: start-up + imports + channel + one call). The commands reach the
coordinators over their admin unix sockets (the harness runs outside the lab's
namespaces), so no TLS handshake is included, and with bytecode cached as for an
installed package. `--hog N` adds N busy-looping processes (bounded by the run) to
measure under CPU load. Prints JSON. Needs root.

    .venv/bin/python bench/switchover_cli.py [--rounds 10] [--hog 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.netlab import Lab
from vnfha_lab.probe import load_attempts

VNFHA = str(Path(sys.executable).with_name("vnfha"))


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]

    return {"n": len(values), "p50_ms": round(statistics.median(values) * 1000, 1),
            "p90_ms": round(pct(0.9) * 1000, 1), "max_ms": round(max(values) * 1000, 1)}


#: The commands run as an installed package does: with compiled bytecode cached (here in
#: a folder of the run's own; PYTHONDONTWRITEBYTECODE would make every start compile
#: cli.py and the modules it imports again).
CMD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_timed(argv: list[str], err: Path | None = None) -> tuple[float, float, float, int]:
    """(start wall clock, seconds to exit, CPU seconds, exit status) of one command;
    its stderr goes to `err` (for the error message of a failed round)."""
    with open(err or os.devnull, "wb") as stderr:
        at = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, env=CMD_ENV)
        _, status, usage = os.wait4(proc.pid, 0)
    return (at, time.perf_counter() - t0, usage.ru_utime + usage.ru_stime,
            os.waitstatus_to_exitcode(status))


def eligible(c: LabCluster, member: str) -> bool:
    g = c.group()
    return g is not None and any(m.name == member and m.health == 2 and not m.quarantined
                                 for m in g.members)


def start_hogs(n: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    """N busy loops, each ending by itself after `seconds` (and killed at the end)."""
    code = f"import time\ne = time.monotonic() + {seconds}\nwhile time.monotonic() < e: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--hog", type=int, default=0, help="busy-looping processes (default 0)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.rounds <= 200 or not 0 <= args.hog <= 16:
        ap.error("--rounds must be 1..200 and --hog 0..16")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="vnfha-bench-"))
    ret: list[float] = []
    first: list[float] = []
    cpu: list[float] = []
    status_t: list[float] = []
    status_cpu: list[float] = []
    version_t: list[float] = []
    hogs: list[subprocess.Popen[bytes]] = []
    not_held: list[tuple[int, list[str]]] = []  # rounds whose new active did not hold it
    phases: dict[str, list[float]] = {k: [] for k in (
        "start_to_demote_commit", "demote_to_promote_commit", "promote_to_vip_claimed",
        "vip_claimed_to_return")}
    with Lab() as lab:
        c = LabCluster(lab, root, stabilization=0.5)
        try:
            c.start_pair()
            eps = ",".join(f"unix://{c.admin_socket(cid)}" for cid in c.cids)
            CMD_ENV["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
            for warm in (["status"], ["switchover", "nope"]):  # compile once, as pip does
                run_timed([VNFHA, "--endpoint", eps, *warm])
            budget = 60 + 30 * args.rounds  # generous: a loaded host is slow
            checker = VipChecker(c, max_seconds=budget).start()
            probe = c.start_probe(duration=budget, interval=0.005, timeout=0.02)
            hogs = start_hogs(args.hog, budget)
            load = os.getloadavg()
            members = {"vm1": "web-1", "vm2": "web-2"}
            for i in range(args.rounds):
                c.wait(lambda: len(c.vip_holders()) == 1, 10, "the VIP held")
                time.sleep(0.3)
                [active] = c.vip_holders()  # the VM serving now (status may lag a commit)
                target = "vm2" if active == "vm1" else "vm1"
                c.wait(lambda t=target: eligible(c, members[t]), 20, f"{target} eligible")
                at, took, used, rc = run_timed([VNFHA, "--endpoint", eps, "switchover", "web",
                                                "--to", members[target]], root / "cmd.err")
                if rc != 0:
                    raise RuntimeError(f"round {i}: switchover exited {rc}: "
                                       f"{(root / 'cmd.err').read_text().strip()}")
                holders = c.vip_holders()
                if holders != {target}:
                    # Only an overloaded host (the lease lapsing between the report and
                    # this check) should ever count here; the e2e test asserts it never
                    # happens (tests/e2e/test_netns_switchover_cli.py).
                    not_held.append((i, sorted(holders)))
                c.wait(lambda t=target, a=at: any(x.ok and x.who == t and x.at >= a
                                                  for x in load_attempts(str(probe))),
                       15, "the new active answers")
                answered = min(x.at for x in load_attempts(str(probe))
                               if x.ok and x.who == target and x.at >= at)
                ret.append(took)
                cpu.append(used)
                first.append(answered - at)
                # Where the time went: the coordinators' event times and the new active's
                # role-change log line (one machine, one wall clock).
                evs = [e for e in c.events() if e.HasField("time")
                       and e.time.ToMicroseconds() / 1e6 >= at]
                when = {e.kind: e.time.ToMicroseconds() / 1e6 for e in reversed(evs)}
                claims = [d["ts"] for d in c.role_changes(target)
                          if d.get("role") == "active" and d["ts"] >= at]
                if {"demoted", "promoted"} <= when.keys() and claims:
                    phases["start_to_demote_commit"].append(when["demoted"] - at)
                    phases["demote_to_promote_commit"].append(when["promoted"]
                                                              - when["demoted"])
                    phases["promote_to_vip_claimed"].append(claims[0] - when["promoted"])
                    phases["vip_claimed_to_return"].append(at + took - claims[0])
                _, s_took, s_cpu, s_rc = run_timed([VNFHA, "--endpoint", eps, "status"])
                if s_rc == 0:
                    status_t.append(s_took)
                    status_cpu.append(s_cpu)
                version_t.append(run_timed([VNFHA, "--version"])[1])
                print(f"round {i + 1}: return {took * 1000:.0f} ms, first answer "
                      f"{first[-1] * 1000:.0f} ms, status {s_took * 1000:.0f} ms",
                      file=sys.stderr)
            log = checker.stop()
            print(json.dumps({
                "benchmark": "switchover_cli", "hogs": args.hog,
                "loadavg_at_start": [round(x, 2) for x in load],
                "switchover_command_return": summary(ret),
                "switchover_first_answer_from_new_active": summary(first),
                "switchover_cpu": summary(cpu),
                "status_command": summary(status_t),
                "status_cpu": summary(status_cpu),
                "version_command": summary(version_t),
                "switchover_phases": {k: summary(v) for k, v in phases.items()},
                "max_vip_holders": log.max_holders,
                "rounds_returned_without_the_new_active_holding": not_held,
            }, indent=2))
        except Exception as e:
            print(f"error: {e}\n{c.logs_tail()}", file=sys.stderr)
            return 1
        finally:
            for h in hogs:
                h.kill()
                h.wait()
            c.close()
    if args.keep:
        print(f"logs kept in {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
