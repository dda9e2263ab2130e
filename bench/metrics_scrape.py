"""What the metrics cost: one /metrics scrape of a coordinator holding G groups
(2 members each, on G nodes), over real HTTP on loopback, and the per-keepalive
cost of the one histogram observation on the hot path.

Prints one JSON object. Usage: .venv/bin/python bench/metrics_scrape.py [--groups G]
[--scrapes N]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import time
import urllib.request

from vnfha.coordinator import commands as C
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.metrics import CoordinatorMetrics
from vnfha.coordinator.server import Coordinator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--scrapes", type=int, default=50)
    args = ap.parse_args()
    mport = free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{free_port()}",
                                 "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "metrics": {"listen": f"127.0.0.1:{mport}"},
    })
    c = Coordinator(cfg)
    c.start()
    try:
        names = [f"g{i}" for i in range(args.groups)]
        c.store.submit(C.apply_groups([{"name": n, "mode": "active-standby"} for n in names]))
        for i, n in enumerate(names):
            c.store.submit(C.register_node(f"vm{i}", "", [
                {"group": n, "member": f"{n}-a"},
                {"group": names[(i + 1) % len(names)], "member": f"{n}-b"}]))
        url = f"http://127.0.0.1:{mport}/metrics"
        times, size = [], 0
        for _ in range(args.scrapes):
            t0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=10) as r:
                size = len(r.read())
            times.append(time.perf_counter() - t0)
    finally:
        c.stop()
    m = CoordinatorMetrics()
    n = 100_000
    t0 = time.perf_counter()
    for _ in range(n):
        m.keepalive_ack.observe(0.0002)
    observe_us = (time.perf_counter() - t0) / n * 1e6
    print(json.dumps({
        "groups": args.groups, "members": 2 * args.groups, "scrape_bytes": size,
        "scrape_ms_p50": round(statistics.median(times) * 1000, 2),
        "scrape_ms_p99": round(pct(times, 0.99) * 1000, 2),
        "keepalive_observe_us": round(observe_us, 3),
    }))


if __name__ == "__main__":
    main()
