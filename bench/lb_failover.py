"""Client-observed error window when a backend dies and when the active LB dies.

The active-active lab (lab/vnfha_lab/lablb.py): 3 coordinators, 3 backend VMs
behind an HA pair of real HAProxy load balancers (front VIP on the active LB),
a client connecting to the VIP every 10 ms (each attempt bounded by 50 ms;
HAProxy's connect timeout to a dead server is 100 ms, no redispatch, so a
request sent to a dead backend fails). Each round:

1. crash one backend VM (link down + SIGKILL of everything in it; rotating);
   error window = fault -> end of the last failed request (0 if none failed);
   also how long until both HAProxys had the member out (exclusion applied);
2. bring it back and wait until it is in service again;
3. crash the active LB host; error window as above (service resumes through
   the other LB once it holds the VIP); bring it back as the standby.

Prints JSON. Needs root and haproxy (scripts/setup.sh).

    .venv/bin/python bench/lb_failover.py [--rounds 5] [--ttl 0.25] [--interval 0.06]
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

from vnfha_lab.lablb import LbLab
from vnfha_lab.netlab import Lab
from vnfha_lab.probe import load_attempts


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": round(statistics.median(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1)}


def error_window(probe: Path, fault: float, until: float,
                 timeout: float = 0.05) -> tuple[float, int]:
    """From the fault to the end of the last failed request that was still running at
    or after it (the prober is sequential: a request ends when the next one starts),
    and how many requests failed."""
    attempts = sorted(load_attempts(str(probe)), key=lambda a: a.at)
    ends = [attempts[i + 1].at if i + 1 < len(attempts) else a.at + timeout
            for i, a in enumerate(attempts)]
    failed = [end for a, end in zip(attempts, ends, strict=True)
              if not a.ok and end >= fault and a.at <= until]
    return (max(failed) - fault if failed else 0.0), len(failed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ttl", type=float, default=0.25)
    ap.add_argument("--interval", type=float, default=0.06)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="vnfha-bench-lb-"))
    backend: list[float] = []
    backend_failed: list[int] = []
    applied: list[float] = []
    lb: list[float] = []
    lb_failed: list[int] = []
    with Lab() as labnet:
        c = LbLab(labnet, root, ttl=args.ttl, interval=args.interval, stabilization=0.5)
        try:
            c.start_all()
            probe = c.start_front_probe(duration=40 * args.rounds + 30, timeout=0.05)
            c.wait(lambda: all(any(a.ok and a.who == vm for a in load_attempts(str(probe)))
                               for vm in c.vms), 10, "all backends serve")
            active_lb = "lb1"
            for i in range(args.rounds):
                vm = c.vms[i % len(c.vms)]
                member = c.member_of(vm)
                time.sleep(1.0)
                fault = c.crash_vm(vm)
                c.wait(lambda m=member: all(m not in c.haproxy_ready(x) for x in c.lbs
                                            if x not in c.crashed), 10, f"{member} out")
                done = max(c.excluded_at(x, member, fault) or fault for x in c.lbs)
                applied.append(done - fault)
                time.sleep(1.0)
                w, n = error_window(probe, fault, time.time())
                backend.append(w)
                backend_failed.append(n)
                c.revive_vm(vm)
                c.wait(lambda m=member: all(m in c.haproxy_ready(x) for x in c.lbs), 20,
                       f"{member} back in service")
                time.sleep(1.0)
                fault = c.crash_vm(active_lb)
                standby = "lb2" if active_lb == "lb1" else "lb1"
                c.wait(lambda s=standby: c.vip_on() - c.crashed == {s}, 10, "VIP moved")
                c.wait(lambda f=fault: sum(1 for a in load_attempts(str(probe))
                                           if a.ok and a.at > f) > 20, 10, "service resumed")
                w, n = error_window(probe, fault, time.time())
                lb.append(w)
                lb_failed.append(n)
                # The dead LB host reboots: HAProxy, then its agent (it rejoins as standby).
                c.wait(lambda a=active_lb: a not in c.vip_on(), 5, "dead LB's VIP gone")
                c.lab.link_up(c.hosts[active_lb])
                c.crashed.discard(active_lb)
                booted = time.time()
                c.start_haproxy(active_lb)
                c.start_lb_agent(active_lb, 200 if active_lb == "lb1" else 100)
                c.wait(lambda a=active_lb, t=booted: c.lb_in_step(a, t), 20,
                       "revived LB's agent in step")
                active_lb = standby
                print(f"round {i + 1}: backend {backend[-1] * 1000:.0f} ms "
                      f"({backend_failed[-1]} failed, applied after {applied[-1] * 1000:.0f} ms)"
                      f", lb {lb[-1] * 1000:.0f} ms ({lb_failed[-1]} failed)", file=sys.stderr)
            print(json.dumps({
                "benchmark": "lb_failover",
                "settings": {"ttl_s": args.ttl, "keepalive_interval_s": args.interval,
                             "lb_reconcile_interval_s": c.reconcile_interval,
                             "haproxy_connect_timeout_ms": 100, "redispatch": False,
                             "probe_interval_s": 0.01, "probe_timeout_s": 0.05},
                "backend_loss_error_window": summary(backend),
                "backend_loss_failed_requests": backend_failed,
                "backend_loss_exclusion_applied_on_both_lbs": summary(applied),
                "lb_loss_error_window": summary(lb),
                "lb_loss_failed_requests": lb_failed,
                "recovery_hook_calls": len(c.hook_calls()),
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
