"""Memory of a coordinator asked about names it has never heard of (PeerService.GetLeaseAges).

Starts one coordinator in this process (memory store, loopback), sends CALLS queries of
NAMES invented node names each over real gRPC, and prints the process's resident set
size and the lease table's size before and after, as JSON. On main before issue 11's
validation work, 40 x 10,000 grew the process by 151 MB, never freed.

    .venv/bin/python bench/lease_ages_memory.py [--calls 40] [--names 10000]
"""

from __future__ import annotations

import argparse
import gc
import json
import time

import grpc

from vnfha.coordinator.config import parse_config
from vnfha.coordinator.server import Coordinator
from vnfha.v1 import peer_pb2, peer_pb2_grpc
from vnfha_lab.ports import free_port


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--names", type=int, default=10_000)
    args = ap.parse_args()
    port = free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}",
                                 "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "logging": {"level": "warning"},
    })
    c = Coordinator(cfg)
    c.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            peer = peer_pb2_grpc.PeerServiceStub(ch)
            peer.GetLeaseAges(peer_pb2.GetLeaseAgesRequest(nodes=["warm-up"]), timeout=10)
            gc.collect()
            before, entries_before = rss_mb(), c.leases.tracked()
            started = time.monotonic()
            for call in range(args.calls):
                names = [f"ghost-{call}-{i:06d}" for i in range(args.names)]
                peer.GetLeaseAges(peer_pb2.GetLeaseAgesRequest(nodes=names), timeout=30)
            took = time.monotonic() - started
            gc.collect()
            after, entries_after = rss_mb(), c.leases.tracked()
    finally:
        c.stop()
    print(json.dumps({"calls": args.calls, "names_per_call": args.names,
                      "rss_mb_before": round(before, 1), "rss_mb_after": round(after, 1),
                      "rss_growth_mb": round(after - before, 1),
                      "lease_table_entries_before": entries_before,
                      "lease_table_entries_after": entries_after,
                      "seconds": round(took, 2)}, indent=2))


if __name__ == "__main__":
    main()
