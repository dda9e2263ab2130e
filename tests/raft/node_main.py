"""A test node: one ReplicatedLog plus a tiny JSON-lines control port on loopback.

Run as ``python node_main.py --self H:P --peers H:P,H:P --data-dir D --ctl-port N``.
Control requests (one JSON object per line, one reply line each):
``{"op": "submit", "cmd": {...}, "timeout": 1.0}``, ``{"op": "status"}``,
``{"op": "state"}``. Used by the durability test and the benchmark.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

from vnfha.coordinator.raft import (
    CommitTimeoutError,
    NoLeaderError,
    RaftError,
    RaftSettings,
    ReplicatedLog,
)


class EpochSM:
    """Records every applied rid with the epoch it got; epochs count up by one per new rid."""

    def __init__(self) -> None:
        self.epoch = 0
        self.rids: dict[str, list[Any]] = {}  # rid -> [value, epoch]

    def apply(self, command: dict[str, Any]) -> dict[str, Any]:
        rid = command.get("rid")
        if not isinstance(rid, str):
            return {"error": "no rid"}
        if rid in self.rids:
            _value, epoch = self.rids[rid]
            return {"ok": True, "epoch": epoch, "dup": True}
        self.epoch += 1
        self.rids[rid] = [command.get("value"), self.epoch]
        return {"ok": True, "epoch": self.epoch}

    def snapshot(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "rids": dict(self.rids)}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.epoch = int(snapshot["epoch"])
        self.rids = {k: list(v) for k, v in snapshot["rids"].items()}


def serve(log: ReplicatedLog, sm: EpochSM, port: int) -> socketserver.ThreadingTCPServer:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                try:
                    req = json.loads(line)
                    reply = self.dispatch(req)
                except Exception as exc:  # report, keep serving
                    reply = {"err": "internal", "detail": repr(exc)}
                self.wfile.write(json.dumps(reply).encode() + b"\n")
                self.wfile.flush()

        def dispatch(self, req: dict[str, Any]) -> dict[str, Any]:
            op = req.get("op")
            if op == "submit":
                try:
                    return {"ok": log.submit(req["cmd"], timeout=float(req.get("timeout", 1.0)))}
                except NoLeaderError:
                    return {"err": "no_leader"}
                except CommitTimeoutError:
                    return {"err": "timeout"}
                except RaftError as exc:
                    return {"err": "raft", "detail": str(exc)}
            if op == "bench":  # n sequential submits measured inside this process
                lat = []
                for i in range(int(req["n"])):
                    t0 = time.perf_counter()
                    log.submit({"rid": f"{req['prefix']}-{i}", "value": i}, timeout=5.0)
                    lat.append(time.perf_counter() - t0)
                return {"ok": lat}
            if op == "status":
                return {"ok": log.status()}
            if op == "state":
                return {"ok": log.read(lambda _sm: sm.snapshot()),
                        "applied": log.applied_index()}
            return {"err": "bad_op"}

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--self", dest="self_address", required=True)
    p.add_argument("--peers", default="")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--ctl-port", type=int, required=True)
    p.add_argument("--secret", default="test-cluster-secret-of-at-least-32-bytes")
    p.add_argument("--compaction", type=int, default=10000)
    p.add_argument("--election-min", type=float, default=None)
    p.add_argument("--election-max", type=float, default=None)
    p.add_argument("--no-fast-election", action="store_true")
    p.add_argument("--disk-fatal-after", type=float, default=None)
    p.add_argument("--disk-min-free", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    peers = tuple(x for x in args.peers.split(",") if x)
    kw: dict[str, Any] = {}
    if args.election_min is not None:
        kw["election_timeout_min"] = args.election_min
    if args.no_fast_election:
        kw["fast_election_on_disconnect"] = False
    if args.election_max is not None:
        kw["election_timeout_max"] = args.election_max
    if args.disk_fatal_after is not None:
        kw["disk_fatal_after"] = args.disk_fatal_after
    if args.disk_min_free is not None:
        kw["disk_min_free_bytes"] = args.disk_min_free
    settings = RaftSettings(self_address=args.self_address, peers=peers,
                            data_dir=Path(args.data_dir), secret=args.secret if peers else None,
                            compaction_min_entries=args.compaction, **kw)
    sm = EpochSM()
    done = threading.Event()
    fatal: list[str] = []

    def on_fatal(line: str) -> None:
        fatal.append(line)
        done.set()

    log = ReplicatedLog(settings, sm, on_fatal=on_fatal)
    log.start()
    server = serve(log, sm, args.ctl_port)
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print("READY", flush=True)
    done.wait()
    server.shutdown()
    log.stop()
    if fatal:
        print(f"FATAL {fatal[0]}", flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
