"""A sample stateful VNFC: a key-value service kept in sync active -> standby.

    python -m vnfha.agents.samples.kvstore serve --group kv \\
        --role-socket /run/vnfha/role.sock --listen 0.0.0.0:8090 \\
        --sync-listen 0.0.0.0:7601 --peer 198.18.0.12:7601 \\
        --coordinators 198.18.0.1:7401,198.18.0.2:7401,198.18.0.3:7401

HTTP on --listen (clients reach it through the group's VIP):

    PUT /kv/<key>   body = value   200 {"seq", "epoch"} once the standby has applied
                                   it (sync mode); 503 when standby, deposed, or the
                                   standby did not acknowledge in time
    GET /kv/<key>                  200 value, 404 if absent
    GET /kv                        200 {key: value, ...}
    GET /status                    role, epoch, sequence, sync and refusal counters

What it shows (docs/state-sync.md):

* role and epoch from the local agent through the SDK (`active_context`);
  writes are served only while the context is valid;
* every write is sequenced and sent to the standby over direct peer sync,
  stamped with the epoch; in sync mode the client is answered only after the
  standby applied it, so an acknowledged write survives a failover;
* a checkpoint of the whole store goes to the coordinators every
  --checkpoint-interval seconds (fenced by the epoch), and a note of each
  checkpoint and takeover to the group's queue;
* at takeover the new active loads the latest checkpoint and keeps whatever
  the sync stream applied beyond it, writes a checkpoint at once, and installs
  that as the base its standby catches up from.

`stale-probe` sends sync messages, queue publishes and checkpoint writes as a
given (old) epoch and prints how each was answered: the tests run it where a
deposed active ran, to check that every one is refused as stale.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vnfha.agents.sdk import ActiveContext, NotActive, RoleApiError, RoleClient
from vnfha.agents.statesync.errors import (
    NotActiveError,
    RefusedError,
    StaleEpochError,
    SyncUnavailable,
)
from vnfha.agents.statesync.receiver import SyncConfigError, SyncReceiver
from vnfha.agents.statesync.sender import FixedEpoch, SyncPeerClient, SyncSender
from vnfha.agents.statesync.store import StateClient
from vnfha.coordinator.logs import setup_logging
from vnfha.coordinator.security.tls import TlsFiles, from_env_or_args

log = logging.getLogger("vnfha.sample.kvstore")

MAX_VALUE = 64 * 1024
#: The coordinators' default `state.checkpoint_max_bytes` (docs/config.md).
DEFAULT_MAX_BYTES = 256 * 1024


class StoreFull(Exception):
    """A write would make the store's checkpoint bigger than the coordinators accept."""


def _enc_len(text: str) -> int:
    return len(json.dumps(text))


class SizeBudget:
    """The exact size of `json.dumps(data, sort_keys=True)` (the checkpoint), kept as
    writes happen, so a write that would make the checkpoint bigger than the
    coordinators accept (`state.checkpoint_max_bytes`) is refused *before* it is
    applied and acknowledged. Otherwise the store would acknowledge writes that no
    checkpoint can carry: the next checkpoint is refused `too_large`, and a takeover
    from the last one that fit loses them (found in issue 12's nemesis runs)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 2  # "{}"
        self.keys = 0

    def reset(self, data: dict[str, str]) -> None:
        self.size = len(json.dumps(data, sort_keys=True))
        self.keys = len(data)

    def after(self, data: dict[str, str], key: str, value: str) -> int:
        """The checkpoint's size once `key` holds `value`; raises StoreFull over the limit."""
        old = data.get(key)
        if old is not None:
            size = self.size - _enc_len(old) + _enc_len(value)
        else:  # '"key": value' plus a ", " unless it is the first entry
            size = self.size + _enc_len(key) + 2 + _enc_len(value) + (2 if self.keys else 0)
        if size > self.limit:
            raise StoreFull(f"the store's checkpoint would be {size} bytes, over the "
                            f"{self.limit} the coordinators accept (--max-bytes, "
                            "state.checkpoint_max_bytes): refused, nothing written")
        return size

    def commit(self, data: dict[str, str], key: str, size: int) -> None:
        """Record an applied write whose size `after` returned (data not yet updated)."""
        if key not in data:
            self.keys += 1
        self.size = size


class KvStore:
    """The store, its standby-side receiver and its active-side loop."""

    def __init__(self, group: str, role_socket: str, sync_listen: str, peers: list[str],
                 coordinators: list[str], mode: str = "sync",
                 checkpoint_interval: float = 1.0, ack_timeout: float = 1.0,
                 tls: TlsFiles | None = None, insecure: bool = False,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.group = group
        self.budget = SizeBudget(max_bytes)
        self.tls = tls
        self.peers = peers
        self.mode = mode
        self.checkpoint_interval = checkpoint_interval
        self.ack_timeout = ack_timeout
        self.lock = threading.Lock()
        self.data: dict[str, str] = {}
        self.seq = 0  # last applied sequence
        self.role = RoleClient(role_socket)
        self.store = StateClient(coordinators, tls=tls)
        self.receiver = SyncReceiver(group, self, self.store.committed_epoch, bind=sync_listen,
                                     owners=self.store.epoch_owner,
                                     tls=tls, insecure=insecure)
        self.active: tuple[ActiveContext, SyncSender] | None = None
        self.stop = threading.Event()
        self.stats: dict[str, Any] = {"takeovers": 0, "checkpoints": 0, "writes_acked": 0,
                                      "writes_failed": 0, "writes_refused_full": 0,
                                      "loaded_from": ""}

    # -- the receiver's application interface (standby) ------------------------------------

    def apply_updates(self, first_sequence: int, entries: list[bytes]) -> None:
        decoded = [json.loads(e) for e in entries]  # all or nothing
        with self.lock:
            for i, (k, v) in enumerate(decoded):
                self.data[k] = v
                self.seq = first_sequence + i
            self.budget.reset(self.data)

    def install_snapshot(self, sequence: int, data: bytes) -> None:
        loaded = json.loads(data) if data else {}
        with self.lock:
            self.data, self.seq = loaded, sequence
            self.budget.reset(self.data)

    def snapshot(self) -> tuple[int, bytes]:
        with self.lock:
            return self.seq, json.dumps(self.data, sort_keys=True).encode()

    # -- the active's side -----------------------------------------------------------------

    def write(self, key: str, value: str) -> dict[str, Any]:
        """Sequence, apply locally, send; in sync mode return only once acknowledged."""
        active = self.active
        if active is None:
            raise NotActiveError("standby: writes go to the active member")
        ctx, sender = active
        entry = json.dumps([key, value]).encode()
        with self.lock:  # local order == sequence order
            size = self.budget.after(self.data, key, value)  # StoreFull: nothing written
            seq = sender.append(entry)
            self.budget.commit(self.data, key, size)
            self.data[key] = value
            self.seq = seq
        sender.wait_acked(seq)
        return {"seq": seq, "epoch": ctx.epoch}

    def run(self) -> None:
        """Follow the role: act as active while the SDK says so, else stay standby."""
        while not self.stop.is_set():
            try:
                with self.role.active_context(self.group) as ctx:
                    self._serve_active(ctx)
            except NotActive:
                self._wait_promoted()
            except RoleApiError as e:
                log.info("role API not reachable", extra={"error": str(e)})
                self.stop.wait(0.2)
            except (RefusedError, SyncUnavailable) as e:
                # e.g. deposed before the takeover checkpoint committed, or no quorum
                log.warning("could not take over", extra={"group": self.group,
                                                          "error": str(e)})
                self.stop.wait(0.2)

    def _wait_promoted(self) -> None:
        with self.role.watch(self.group) as updates:
            for state in updates:
                if self.stop.is_set() or (state.active and state.lease_valid()):
                    return

    def _serve_active(self, ctx: ActiveContext) -> None:
        epoch = ctx.epoch
        self.receiver.mark_active(epoch)  # from now on the old active's stream is refused
        source = self._load_takeover_state(ctx)
        seq, snap = self.snapshot()
        version = self.store.put_checkpoint(self.group, epoch, snap, sync_sequence=seq)
        self._note(ctx, {"event": "takeover", "epoch": epoch, "seq": seq, "version": version})
        sender = SyncSender(self.group, ctx, self.peers, base=(seq, snap), mode=self.mode,
                            ack_timeout=self.ack_timeout, tls=self.tls)
        self.stats["takeovers"] += 1
        self.stats["loaded_from"] = source
        log.info("serving as active", extra={"group": self.group, "epoch": epoch, "seq": seq,
                                             "loaded_from": source})
        self.active = (ctx, sender)
        try:
            last_cp = seq
            while not self.stop.is_set() and not ctx.wait_lost(self.checkpoint_interval):
                seq, snap = self.snapshot()
                if seq != last_cp:
                    try:
                        version = self.store.put_checkpoint(self.group, epoch, snap,
                                                            sync_sequence=seq)
                    except RefusedError as e:
                        if isinstance(e, StaleEpochError):
                            raise
                        # e.g. too_large: --max-bytes above the coordinators' limit.
                        # Sync mode still has every write on the standby; say it once.
                        if self.stats.get("checkpoint_refused") != e.error:
                            log.error("checkpoint refused; keeping the last one",
                                      extra={"group": self.group, "epoch": epoch,
                                             "error": e.error, "bytes": len(snap)})
                        self.stats["checkpoint_refused"] = e.error
                        continue
                    self.stats.pop("checkpoint_refused", None)
                    sender.set_base(seq, snap)
                    self._note(ctx, {"event": "checkpoint", "epoch": epoch, "seq": seq,
                                     "version": version})
                    self.stats["checkpoints"] += 1
                    last_cp = seq
        except (StaleEpochError, SyncUnavailable) as e:
            log.warning("checkpoint failed; giving up the active role", extra={
                "group": self.group, "epoch": epoch, "error": str(e)})
        finally:
            self.active = None
            sender.close()
            log.info("stopped acting as active", extra={"group": self.group, "epoch": epoch,
                                                        "reason": ctx.reason})

    def _load_takeover_state(self, ctx: ActiveContext) -> str:
        """The latest checkpoint, unless the sync stream already brought us further."""
        deadline = time.monotonic() + 5.0
        while True:
            try:
                cp = self.store.get_checkpoint(self.group, min_epoch=ctx.epoch)
                break
            except SyncUnavailable:
                if time.monotonic() > deadline or not ctx.valid():
                    raise
                time.sleep(0.05)
        with self.lock:
            if cp is not None and cp.sync_sequence > self.seq:
                self.data = json.loads(cp.data) if cp.data else {}
                self.seq = cp.sync_sequence
                self.budget.reset(self.data)
                return f"checkpoint v{cp.version} (seq {cp.sync_sequence})"
            return f"sync log (seq {self.seq})"

    def _note(self, ctx: ActiveContext, doc: dict[str, Any]) -> None:
        try:
            self.store.publish(self.group, ctx.epoch, json.dumps(doc).encode())
        except SyncUnavailable as e:
            log.info("queue note not published", extra={"error": str(e)})

    def status(self) -> dict[str, Any]:
        active = self.active
        pos = self.receiver.position()
        with self.lock:
            out = {"group": self.group, "role": "active" if active else "standby",
                   "epoch": active[0].epoch if active else pos.epoch, "seq": self.seq,
                   "keys": len(self.data), "mode": self.mode, **self.stats,
                   "receiver": {"epoch": pos.epoch, "applied": pos.applied,
                                "synced": pos.synced, "refused": dict(self.receiver.refused)}}
        if active is not None:
            out["sender"] = active[1].status()
        return out


def make_handler(kv: KvStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any) -> None:
            raw = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            try:
                self.wfile.write(raw)
            except OSError:  # the client gave up waiting; the outcome stands
                pass

        def do_GET(self) -> None:
            if self.path == "/status":
                self._send(200, kv.status())
            elif self.path == "/kv":
                with kv.lock:
                    self._send(200, dict(kv.data))
            elif self.path.startswith("/kv/"):
                with kv.lock:
                    value = kv.data.get(self.path[4:])
                if value is None:
                    self._send(404, {"error": "no such key"})
                else:
                    self._send(200, json.dumps(value))
            else:
                self._send(404, {"error": "unknown path"})

        def do_PUT(self) -> None:
            if not self.path.startswith("/kv/") or len(self.path) == 4:
                self._send(404, {"error": "PUT /kv/<key>"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_VALUE:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "value too large"})
                return
            value = self.rfile.read(length).decode(errors="replace")
            try:
                self._send(200, kv.write(self.path[4:], value))
                kv.stats["writes_acked"] += 1
            except (NotActiveError, StaleEpochError) as e:
                self._send(503, {"error": f"not active: {e}"})
            except StoreFull as e:
                kv.stats["writes_refused_full"] += 1
                self._send(HTTPStatus.INSUFFICIENT_STORAGE, {"error": str(e)})
            except SyncUnavailable as e:
                kv.stats["writes_failed"] += 1
                self._send(503, {"error": f"not acknowledged by the standby: {e}"})

    return Handler


def serve(args: argparse.Namespace) -> int:
    setup_logging("info", "json")
    try:
        kv = KvStore(args.group, args.role_socket, args.sync_listen,
                     [p for p in args.peer if p], args.coordinators.split(","), mode=args.mode,
                     checkpoint_interval=args.checkpoint_interval,
                     ack_timeout=args.ack_timeout, tls=_tls(args), insecure=args.insecure,
                     max_bytes=args.max_bytes)
    except SyncConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    kv.receiver.start()
    host, port = args.listen.rsplit(":", 1)
    httpd = ThreadingHTTPServer((host, int(port)), make_handler(kv))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True, name="http").start()
    role = threading.Thread(target=kv.run, daemon=True, name="role")
    role.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    log.info("kvstore serving", extra={"group": args.group, "http": args.listen,
                                       "sync": args.sync_listen, "peers": args.peer})
    done.wait()
    kv.stop.set()
    httpd.shutdown()
    kv.receiver.stop()
    return 0


def stale_probe(args: argparse.Namespace) -> int:
    """Send as `--epoch` and report how each message was answered (JSON on stdout)."""
    out: dict[str, dict[str, int]] = {k: {"attempted": 0} for k in ("sync", "publish",
                                                                      "checkpoint")}

    def count(kind: str, fn: Any) -> None:
        out[kind]["attempted"] += 1
        try:
            fn()
            key = "accepted"
        except RefusedError as e:
            key = e.error
        except SyncUnavailable:
            key = "unavailable"
        out[kind][key] = out[kind].get(key, 0) + 1

    ctx = FixedEpoch(args.epoch)
    tls = _tls(args)
    store = StateClient(args.coordinators.split(","), tls=tls)
    peers = [SyncPeerClient(p, tls=tls) for p in args.peer if p]
    for i in range(args.count):
        for peer in peers:
            count("sync", lambda p=peer, i=i: p.apply(args.group, ctx.epoch, args.sequence + i,
                                                       [json.dumps(["zombie", i]).encode()]))
        count("publish", lambda i=i: store.publish(args.group, ctx.epoch, f"zombie {i}".encode()))
        count("checkpoint", lambda: store.put_checkpoint(args.group, ctx.epoch, b"{}"))
    json.dump(out, sys.stdout)
    print()
    return 0


def _tls(args: argparse.Namespace) -> TlsFiles | None:
    return from_env_or_args(args.cacert, args.cert, args.key)


def _tls_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cacert", help="CA bundle (mTLS to coordinators and peers)")
    p.add_argument("--cert", help="this node's certificate (vnfha://node/NAME)")
    p.add_argument("--key", help="its private key")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vnfha.agents.samples.kvstore",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the key-value VNFC")
    s.add_argument("--group", required=True)
    s.add_argument("--role-socket", required=True, help="the agent's role_api.socket")
    s.add_argument("--listen", default="0.0.0.0:8090", help="HTTP for clients (host:port)")
    s.add_argument("--sync-listen", default="0.0.0.0:7601", help="peer sync receiver")
    s.add_argument("--peer", action="append", default=[],
                   help="a standby's sync address (host:port); repeat for several")
    s.add_argument("--coordinators", required=True, help="comma-separated host:port list")
    s.add_argument("--mode", choices=("sync", "async"), default="sync")
    s.add_argument("--insecure", action="store_true",
                   help="serve the sync receiver without TLS on a non-loopback address "
                        "(peers unauthenticated; labs only)")
    s.add_argument("--checkpoint-interval", type=float, default=1.0)
    s.add_argument("--ack-timeout", type=float, default=1.0)
    s.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help="largest checkpoint of the whole store: writes beyond it are "
                        "refused (HTTP 507); at most the coordinators' "
                        "state.checkpoint_max_bytes (default %(default)s)")
    _tls_flags(s)
    p = sub.add_parser("stale-probe", help="send as an old epoch; print the answers")
    p.add_argument("--group", required=True)
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument("--peer", action="append", default=[])
    p.add_argument("--coordinators", required=True)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--sequence", type=int, default=1, help="first sync sequence to use")
    _tls_flags(p)
    args = ap.parse_args(argv)
    return serve(args) if args.cmd == "serve" else stale_probe(args)


if __name__ == "__main__":
    sys.exit(main())
