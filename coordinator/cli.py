"""`vnfha`: run a coordinator, or talk to a running cluster through AdminService.

Any coordinator answers admin calls (writes are forwarded to the leader), so the
client tries each `--endpoint` in turn and only gives up when none answers: an
operator's tool must keep working while a coordinator is down, which is exactly
when it is needed. Output formatting lives in pure functions (`format_status`,
`format_event`, ...) so it is testable without a server. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

import grpc

from vnfha.coordinator.config import ConfigError, load_config, load_groups_file, parse_address
from vnfha.coordinator.security import certs_cli
from vnfha.coordinator.security.tls import (
    ENV_CA,
    ENV_CERT,
    ENV_KEY,
    TlsError,
    channel_credentials,
    from_env_or_args,
)
from vnfha.coordinator.security.tls import TlsFiles as TlsFiles
from vnfha.v1 import admin_pb2, admin_pb2_grpc, types_pb2

DEFAULT_ENDPOINT = "127.0.0.1:7401"
ENDPOINT_ENV = "VNFHA_ENDPOINT"

EXIT_OK = 0
#: the server refused the request (bad argument, unknown name, wrong state, conflict)
EXIT_REFUSED = 1
#: bad command line or bad file: nothing was sent
EXIT_USAGE = 2
#: no coordinator answered
EXIT_UNREACHABLE = 3

#: codes that mean "this coordinator cannot answer now": try the next endpoint
_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

_MODE_TO_PB = {"active-standby": types_pb2.GROUP_MODE_ACTIVE_STANDBY,
               "active-active": types_pb2.GROUP_MODE_ACTIVE_ACTIVE}


class UsageError(Exception):
    """Bad command-line input detected after argparse (exit 2)."""


class Unreachable(Exception):
    """Every endpoint failed with UNAVAILABLE / DEADLINE_EXCEEDED (exit 3)."""


# --------------------------------------------------------------------------- endpoints


def parse_endpoints(value: str) -> list[str]:
    """'a:1, b:2' -> ['a:1', 'b:2'] (also unix:///path); raise UsageError on a malformed
    or empty list."""
    endpoints = [part.strip() for part in value.split(",") if part.strip()]
    if not endpoints:
        raise UsageError("--endpoint needs at least one HOST:PORT")
    for ep in endpoints:
        if ep.startswith("unix:"):
            if not ep.removeprefix("unix://").removeprefix("unix:").startswith("/"):
                raise UsageError(f"--endpoint {ep!r}: a unix socket needs an absolute path "
                                 "(unix:///run/vnfha/c1.sock)")
            continue
        try:
            parse_address(ep)
        except ValueError as exc:
            raise UsageError(f"--endpoint {ep!r}: {exc}") from None
    seen: list[str] = []
    for ep in endpoints:  # keep order, drop repeats: trying a dead one twice only costs time
        if ep not in seen:
            seen.append(ep)
    return seen


class AdminClient:
    """AdminService over a list of endpoints, tried in order until one answers."""

    def __init__(self, endpoints: Sequence[str], timeout: float,
                 tls: TlsFiles | None = None) -> None:
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.tls = tls
        self._channels: dict[str, grpc.Channel] = {}

    def _stub(self, endpoint: str) -> admin_pb2_grpc.AdminServiceStub:
        if endpoint not in self._channels:
            # The unix admin socket is local root's: plaintext, no certificate.
            self._channels[endpoint] = (
                grpc.insecure_channel(endpoint) if self.tls is None or endpoint.startswith(
                    "unix:") else grpc.secure_channel(endpoint, channel_credentials(self.tls)))
        return admin_pb2_grpc.AdminServiceStub(self._channels[endpoint])

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def call(self, method: str, request: Any, timeout: float | None = None,
             start: int = 0) -> tuple[str, Any]:
        """Unary call; returns (answering endpoint, response). The request is sent unchanged
        to each endpoint, so writes carry one request_id and apply at most once."""
        errors: list[str] = []
        n = len(self.endpoints)
        for i in range(n):
            endpoint = self.endpoints[(start + i) % n]
            try:
                rpc = getattr(self._stub(endpoint), method)
                return endpoint, rpc(request, timeout=timeout or self.timeout)
            except grpc.RpcError as exc:
                if exc.code() not in _RETRY_CODES:
                    raise
                errors.append(f"{endpoint}: {exc.code().name}")
        raise Unreachable(_unreachable_message(self.endpoints, errors) + self._tls_hint())

    def _tls_hint(self) -> str:
        if self.tls is not None or all(e.startswith("unix:") for e in self.endpoints):
            return ""
        return ("; if the coordinators use mTLS, give --cacert, --cert and --key "
                "(docs/security.md)")

    def watch(self, after_seq: int) -> Iterator[admin_pb2.Event]:
        """Follow events forever, moving to the next endpoint when a stream breaks.
        Gives up (Unreachable) only when a full round of endpoints failed to connect."""
        failures: list[str] = []
        i = 0
        while True:
            endpoint = self.endpoints[i % len(self.endpoints)]
            stream = self._stub(endpoint).WatchEvents(
                admin_pb2.WatchEventsRequest(after_seq=after_seq))
            try:
                for resp in stream:
                    failures.clear()
                    for ev in resp.events:
                        after_seq = max(after_seq, ev.seq)
                        yield ev
                failures.append(f"{endpoint}: stream ended")
            except grpc.RpcError as exc:
                if exc.code() not in _RETRY_CODES and exc.code() != grpc.StatusCode.CANCELLED:
                    raise
                failures.append(f"{endpoint}: {exc.code().name}")
            finally:
                stream.cancel()
            if len(failures) >= len(self.endpoints):
                raise Unreachable(_unreachable_message(self.endpoints, failures)
                                  + self._tls_hint())
            i += 1
            time.sleep(0.2)  # a stream that ends at once must not become a busy loop


def _unreachable_message(endpoints: Sequence[str], errors: Sequence[str]) -> str:
    return f"no coordinator reachable at {', '.join(endpoints)} ({'; '.join(errors)})"


# --------------------------------------------------------------------------- formatting


def enum_label(value: int, enum: Any, prefix: str) -> str:
    """ROLE_ACTIVE -> 'active', GROUP_MODE_ACTIVE_STANDBY -> 'active-standby'; '-' if unset."""
    try:
        name = enum.Name(value)
    except ValueError:
        return str(value)
    if name.endswith("_UNSPECIFIED"):
        return "-"
    return name.removeprefix(prefix).lower().replace("_", "-")


def role_label(value: int) -> str:
    return enum_label(value, types_pb2.Role, "ROLE_")


def health_label(value: int) -> str:
    return enum_label(value, types_pb2.Health, "HEALTH_")


def mode_label(value: int) -> str:
    return enum_label(value, types_pb2.GroupMode, "GROUP_MODE_")


def recovery_label(value: int) -> str:
    return enum_label(value, types_pb2.RecoveryState, "RECOVERY_STATE_")


def format_age(msg: Any, field: str = "lease_age_seconds") -> str:
    """'0.08s', or '-' when the (optional) field is unset."""
    if not msg.HasField(field):
        return "-"
    return f"{getattr(msg, field):.2f}s"


def member_flags(group: admin_pb2.GroupStatus, member: admin_pb2.MemberStatus,
                 maintenance_nodes: set[str]) -> list[str]:
    flags = []
    if member.quarantined:
        flags.append("quarantined")
    if member.node in maintenance_nodes:
        flags.append("maintenance")
    if group.releasing and group.releasing == member.name:
        flags.append("releasing")
    if group.handover_to and group.handover_to == member.name:
        flags.append("handover-target")
    if group.HasField("pool") and member.name not in group.pool.in_service:
        flags.append("out-of-service")
    return flags


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart, no trailing blanks."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [list(headers), *rows]]
    return "\n".join(lines)


STATUS_HEADERS = ("GROUP", "EPOCH", "MEMBER", "NODE", "ROLE", "HEALTH", "LEASE AGE", "FLAGS")


def format_status(status: admin_pb2.GetStatusResponse, endpoint: str = "") -> str:
    """Human table: one header line about the answering coordinator, then one row per
    member (a group without members still gets a row, with '-' for member fields)."""
    c = status.coordinator
    where = f" ({endpoint})" if endpoint else ""
    leader = c.leader_id or "none"
    if c.is_leader:
        leader += " (this one)"
    header = (f"coordinator: {c.node_id or '?'}{where}  leader: {leader}  "
              f"revision: {c.revision}" + (f"  backend: {c.backend}" if c.backend else ""))
    maint = {n.name for n in status.nodes if n.maintenance}
    rows: list[list[str]] = []
    for g in status.groups:
        if not g.members:
            rows.append([g.name, str(g.epoch), "-", "-", "-", "-", "-", ""])
        for m in g.members:
            rows.append([g.name, str(g.epoch), m.name, m.node, role_label(m.role),
                         health_label(m.health), format_age(m),
                         ",".join(member_flags(g, m, maint))])
    parts = [header, format_table(STATUS_HEADERS, rows)]
    idle = [n for n in status.nodes if n.maintenance and not any(
        m.node == n.name for g in status.groups for m in g.members)]
    if idle:
        parts.append("nodes in maintenance without members: "
                     + ", ".join(n.name for n in idle))
    for title, headers, section_rows in _status_sections(status):
        if section_rows:
            parts += ["", title, format_table(headers, section_rows)]
    return "\n".join(parts)


_OPEN_RECOVERY = (types_pb2.RECOVERY_STATE_AWAITING_LB, types_pb2.RECOVERY_STATE_REQUESTED)
POOL_HEADERS = ("GROUP", "VERSION", "IN SERVICE", "OUT OF SERVICE", "LB APPLIED")
OUT_HEADERS = ("GROUP", "MEMBER", "NODE", "AT VERSION", "WHY", "BLOCKED BY")
RECOVERY_HEADERS = ("GROUP", "MEMBER", "NODE", "FAILURE", "STATUS", "ATTEMPTS", "MESSAGE")
SYNC_HEADERS = ("GROUP", "CKPT EPOCH", "CKPT VERSION", "CKPT BYTES", "SYNC SEQ",
                "QUEUE FIRST", "QUEUE NEXT", "MESSAGES", "QUEUE BYTES")


def one_line(text: str) -> str:
    """Free text (a hook's stderr, a reason) as one table cell: whitespace runs, newlines
    included, become one space; '-' if empty."""
    return " ".join(text.split()) or "-"


def shown_recoveries(group: admin_pb2.GroupStatus) -> list[admin_pb2.RecoveryStatus]:
    """The recoveries the table shows: open ones, and given-up ones whose member is still
    out (an operator must act). Closed ones are history: `vnfha events` has them."""
    return [r for r in group.recoveries
            if r.state in _OPEN_RECOVERY
            or (r.state == types_pb2.RECOVERY_STATE_GAVE_UP
                and r.member not in group.pool.in_service)]


def format_lb_applied(group: admin_pb2.GroupStatus) -> str:
    """'lb1=7, lb2=6 (behind)': each LB node's applied pool version; '-' if none reported."""
    pool = group.pool
    return ", ".join(f"{a.node}={a.pool_version}"
                     + (" (behind)" if a.pool_version < pool.pool_version else "")
                     for a in pool.lb_applied) or "-"


def _status_sections(status: admin_pb2.GetStatusResponse
                     ) -> list[tuple[str, Sequence[str], list[list[str]]]]:
    """(title, headers, rows) of the tables under the member table; empty ones are
    left out, so an active/standby cluster without state-sync data looks as before."""
    pools, out, recoveries, sync = [], [], [], []
    for g in status.groups:
        if g.HasField("pool"):
            p = g.pool
            pools.append([g.name, str(p.pool_version), ",".join(p.in_service) or "-",
                          ",".join(x.member for x in p.excluded) or "-", format_lb_applied(g)])
            out += [[g.name, x.member, x.node,
                     str(x.excluded_at_version or "-"),
                     one_line(x.reason), one_line(x.blocked_by)] for x in p.excluded]
        recoveries += [[g.name, r.member, r.node, str(r.failure), recovery_label(r.state),
                        str(r.attempts), one_line(r.message)] for r in shown_recoveries(g)]
        if g.HasField("checkpoint") or g.HasField("queue"):
            c, q = g.checkpoint, g.queue
            cp = ([str(c.epoch), str(c.version), str(c.size_bytes), str(c.sync_sequence)]
                  if g.HasField("checkpoint") else ["-"] * 4)
            qu = ([str(q.first_offset), str(q.next_offset), str(q.message_count),
                   str(q.size_bytes)] if g.HasField("queue") else ["-"] * 4)
            sync.append([g.name, *cp, *qu])
    return [("pools (active-active):", POOL_HEADERS, pools),
            ("out of service:", OUT_HEADERS, out),
            ("recoveries (open, or given up while still out):", RECOVERY_HEADERS, recoveries),
            ("state sync (sizes only):", SYNC_HEADERS, sync)]


def _opt(msg: Any, field: str) -> float | None:
    return getattr(msg, field) if msg.HasField(field) else None


def status_to_dict(status: admin_pb2.GetStatusResponse, endpoint: str = "") -> dict[str, Any]:
    """The `status --json` document (shape documented in docs/cli.md); built by hand so
    enums are the same lowercase words as the table and integers stay integers."""
    c = status.coordinator
    maint = {n.name for n in status.nodes if n.maintenance}
    return {
        "coordinator": {
            "node_id": c.node_id, "endpoint": endpoint, "is_leader": c.is_leader,
            "leader_id": c.leader_id or None, "leader_endpoint": c.leader_endpoint or None,
            "revision": c.revision, "backend": c.backend,
            "details": dict(sorted(c.details.items())),
        },
        "groups": [{
            "name": g.name, "mode": mode_label(g.mode), "vip": g.vip or None, "epoch": g.epoch,
            "active": g.active or None, "releasing": g.releasing or None,
            "handover_to": g.handover_to or None,
            "members": [{
                "name": m.name, "node": m.node, "role": role_label(m.role),
                "health": health_label(m.health), "priority": m.priority,
                "quarantined": m.quarantined, "maintenance": m.node in maint,
                "lease_age_seconds": _opt(m, "lease_age_seconds"),
                "flags": member_flags(g, m, maint),
            } for m in g.members],
            "pool": _pool_to_dict(g) if g.HasField("pool") else None,
            "recoveries": [{
                "member": r.member, "node": r.node, "failure": r.failure,
                "status": recovery_label(r.state), "attempts": r.attempts,
                "reason": r.reason or None, "message": r.message or None,
            } for r in g.recoveries],
            "checkpoint": _checkpoint_to_dict(g.checkpoint) if g.HasField("checkpoint")
            else None,
            "queue": {
                "first_offset": g.queue.first_offset, "next_offset": g.queue.next_offset,
                "message_count": g.queue.message_count, "size_bytes": g.queue.size_bytes,
            } if g.HasField("queue") else None,
        } for g in status.groups],
        "nodes": [{
            "name": n.name, "address": n.address, "maintenance": n.maintenance,
            "lease_age_seconds": _opt(n, "lease_age_seconds"),
        } for n in status.nodes],
    }


def _pool_to_dict(g: admin_pb2.GroupStatus) -> dict[str, Any]:
    p = g.pool
    return {
        "pool_version": p.pool_version, "in_service": list(p.in_service),
        "excluded": [{
            "member": x.member, "node": x.node,
            "excluded_at_version": x.excluded_at_version or None,
            "reason": x.reason or None, "blocked_by": x.blocked_by or None,
        } for x in p.excluded],
        "lb_applied": {a.node: a.pool_version for a in p.lb_applied},
    }


def _checkpoint_to_dict(c: admin_pb2.CheckpointStatus) -> dict[str, Any]:
    written = None
    if c.HasField("written_at"):
        t = c.written_at.ToDatetime(tzinfo=dt.UTC)
        written = t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"epoch": c.epoch, "version": c.version, "size_bytes": c.size_bytes,
            "sync_sequence": c.sync_sequence, "written_at": written}


def event_time(ev: admin_pb2.Event) -> str:
    """ISO 8601 UTC with milliseconds, or '-' if the event has no time."""
    if not ev.HasField("time"):
        return "-"
    t = ev.time.ToDatetime(tzinfo=dt.UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_target(ev: admin_pb2.Event) -> str:
    """'group/member@node', leaving out what the event does not name; '-' if nothing."""
    target = ev.group
    if ev.member:
        target += f"/{ev.member}"
    if ev.node:
        target += f"@{ev.node}"
    return target or "-"


def format_event(ev: admin_pb2.Event) -> str:
    """One line: time, kind, group/member@node, epoch, reason."""
    line = f"{event_time(ev)}  {ev.kind:<16}  {event_target(ev):<24}  epoch={ev.epoch}"
    if ev.actor:
        line += f"  by={ev.actor}"
    if ev.reason:
        line += f"  {ev.reason}"
    return line


def event_to_dict(ev: admin_pb2.Event) -> dict[str, Any]:
    return {"seq": ev.seq, "time": event_time(ev) if ev.HasField("time") else None,
            "kind": ev.kind, "group": ev.group or None, "member": ev.member or None,
            "node": ev.node or None, "epoch": ev.epoch, "reason": ev.reason,
            "actor": ev.actor or None}


def format_switchover(group: str, resp: admin_pb2.SwitchoverResponse) -> str:
    state = "completed" if resp.completed else "in progress"
    return (f"switchover of {group}: {resp.from_member or '-'} -> {resp.to_member or '-'} "
            f"at epoch {resp.epoch} ({state})")


# --------------------------------------------------------------------------- commands


def _run_daemon(path: str, load: Callable[[str], Any], run: Callable[[Any], int]) -> int:
    """Load a config (a bad one is a usage error, exit 2), then run until stopped."""
    try:
        cfg = load(path)
        # The TLS files are read now, so a missing or mismatched one is one clear line.
        lb = getattr(cfg, "lb", None)
        for files in (getattr(cfg, "tls", None), getattr(lb, "tls", None)):
            if files is not None:
                files.load()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TlsError as exc:
        print(f"error: {path}: tls: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return int(run(cfg))


def _cmd_coordinator(args: argparse.Namespace, out: TextIO) -> int:
    from vnfha.coordinator.server import run  # lazy: pulls in raft, pysyncobj, the service

    return _run_daemon(args.config, load_config, run)


def _cmd_agent(args: argparse.Namespace, out: TextIO) -> int:
    from vnfha.agents.config import load_agent_config
    from vnfha.agents.main import run

    return _run_daemon(args.config, load_agent_config, run)


def _cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    client = _client(args)
    endpoint, resp = client.call("GetStatus", admin_pb2.GetStatusRequest())
    if args.json:
        print(json.dumps(status_to_dict(resp, endpoint), indent=2), file=out)
    else:
        print(format_status(resp, endpoint), file=out)
    return EXIT_OK


def _cmd_switchover(args: argparse.Namespace, out: TextIO) -> int:
    if args.wait is not None and args.wait < 0:
        raise UsageError("--wait must be >= 0")
    wait = args.wait if args.wait is not None else 0.0
    req = admin_pb2.SwitchoverRequest(group=args.group, to_member=args.to or "",
                                      request_id=uuid.uuid4().hex, wait_ms=int(wait * 1000))
    # The server waits up to wait_ms (0 means its default, 5 s) before answering.
    timeout = args.timeout + (wait if wait > 0 else 5.0)
    _, resp = _client(args).call("Switchover", req, timeout=timeout)
    print(format_switchover(args.group, resp), file=out)
    return EXIT_OK


def _cmd_maintenance(args: argparse.Namespace, out: TextIO) -> int:
    on = args.state == "on"
    req = admin_pb2.SetMaintenanceRequest(node=args.node, on=on, request_id=uuid.uuid4().hex)
    _, resp = _client(args).call("SetMaintenance", req)
    note = "" if resp.changed else " (unchanged)"
    print(f"maintenance {args.state} for node {args.node}{note}", file=out)
    return EXIT_OK


def _cmd_events(args: argparse.Namespace, out: TextIO) -> int:
    if args.limit < 0:
        raise UsageError("--limit must be >= 0")
    client = _client(args)
    _, resp = client.call("ListEvents", admin_pb2.ListEventsRequest(limit=args.limit))
    last = 0
    for ev in resp.events:
        _print_event(ev, args.json, out)
        last = max(last, ev.seq)
    if not args.follow:
        return EXIT_OK
    try:
        for ev in client.watch(after_seq=last):
            _print_event(ev, args.json, out)
    except KeyboardInterrupt:  # Ctrl-C is how --follow ends
        return EXIT_OK
    return EXIT_OK


def _print_event(ev: admin_pb2.Event, as_json: bool, out: TextIO) -> None:
    line = json.dumps(event_to_dict(ev)) if as_json else format_event(ev)
    print(line, file=out, flush=True)


def _cmd_group_apply(args: argparse.Namespace, out: TextIO) -> int:
    try:
        groups = load_groups_file(args.file)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not groups:
        raise UsageError(f"{args.file}: groups is empty; nothing to apply")
    req = admin_pb2.ApplyGroupsRequest(
        groups=[admin_pb2.GroupSpec(name=g.name, mode=_MODE_TO_PB[g.mode], vip=g.vip or "")
                for g in groups],
        request_id=uuid.uuid4().hex)
    _, resp = _client(args).call("ApplyGroups", req)
    print(f"applied {len(groups)} group(s): {', '.join(g.name for g in groups)} "
          f"(revision {resp.revision})", file=out)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    try:
        demo = importlib.import_module("vnfha.coordinator.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "vnfha.coordinator.demo":
            raise
        print("error: the demo is not available in this installation "
              "(module vnfha.coordinator.demo is missing)", file=sys.stderr)
        return EXIT_REFUSED
    result = demo.main(list(args.demo_args))
    return int(result or 0)


def _client(args: argparse.Namespace) -> AdminClient:
    try:
        tls = from_env_or_args(args.cacert, args.cert, args.key)
    except TlsError as e:
        raise UsageError(str(e)) from None
    client = AdminClient(parse_endpoints(args.endpoint), args.timeout, tls)
    args._clients.append(client)
    return client


# --------------------------------------------------------------------------- parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vnfha", description="vnfha: high-availability coordinator for telecom VNFs.",
        epilog="exit codes: 0 ok, 1 refused by the server, 2 usage or config error, "
               "3 no coordinator reachable")
    p.add_argument("--endpoint", default=os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT,
                   metavar="HOST:PORT[,HOST:PORT...]",
                   help=f"coordinators to ask, tried in order (env {ENDPOINT_ENV}, "
                        f"default {DEFAULT_ENDPOINT})")
    p.add_argument("--timeout", type=_positive_float, default=5.0, metavar="SECONDS",
                   help="per-call deadline (default 5)")
    p.add_argument("--cacert", metavar="FILE", help=f"CA bundle for mTLS (env {ENV_CA})")
    p.add_argument("--cert", metavar="FILE",
                   help=f"your certificate, e.g. vnfha://admin/NAME (env {ENV_CERT})")
    p.add_argument("--key", metavar="FILE", help=f"its private key (env {ENV_KEY})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = sub.add_parser("coordinator", help="run a coordinator")
    c.add_argument("--config", required=True, metavar="FILE", help="coordinator YAML config")
    c.set_defaults(func=_cmd_coordinator)

    a = sub.add_parser("agent", help="run the agent of one VM")
    a.add_argument("--config", required=True, metavar="FILE", help="agent YAML config")
    a.set_defaults(func=_cmd_agent)

    s = sub.add_parser("status", help="groups, members, roles and health")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=_cmd_status)

    sw = sub.add_parser("switchover", help="planned switchover of a group")
    sw.add_argument("group")
    sw.add_argument("--to", metavar="MEMBER", help="target member (default: best standby)")
    sw.add_argument("--wait", type=float, metavar="SECONDS",
                    help="how long the server waits for the promotion (default 5)")
    sw.set_defaults(func=_cmd_switchover)

    m = sub.add_parser("maintenance", help="put a node in or out of maintenance")
    m.add_argument("node")
    m.add_argument("state", choices=("on", "off"))
    m.set_defaults(func=_cmd_maintenance)

    e = sub.add_parser("events", help="recent events; --follow to stream new ones")
    e.add_argument("--follow", "-f", action="store_true", help="keep streaming until Ctrl-C")
    e.add_argument("--limit", type=int, default=0, metavar="N",
                   help="at most N recent events (default: all kept)")
    e.add_argument("--json", action="store_true", help="one JSON object per line")
    e.set_defaults(func=_cmd_events)

    g = sub.add_parser("group", help="manage groups")
    gsub = g.add_subparsers(dest="group_command", metavar="ACTION", required=True)
    ga = gsub.add_parser("apply", help="create or update groups from a YAML file")
    ga.add_argument("-f", "--file", required=True, metavar="FILE",
                    help="YAML with a top-level 'groups:' list")
    ga.set_defaults(func=_cmd_group_apply)

    certs_cli.add_parser(sub)

    # Everything after `demo` belongs to the demo's own parser (see _split_demo).
    d = sub.add_parser("demo", help="run the local demo (arguments go to the demo)",
                       add_help=False)
    d.set_defaults(func=_cmd_demo)
    return p


_GLOBAL_OPTS_WITH_VALUE = ("--endpoint", "--timeout", "--cacert", "--cert", "--key")


def _split_demo(argv: list[str]) -> tuple[list[str], list[str]]:
    """Cut argv after a `demo` command word, so options meant for the demo (even --help)
    reach it untouched; argparse would otherwise claim them."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _GLOBAL_OPTS_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        if arg == "demo":
            return argv[:i + 1], argv[i + 1:]
        break
    return argv, []


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the `vnfha` console script; returns the exit code."""
    out = out or sys.stdout
    parser = build_parser()
    argv, demo_args = _split_demo(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args._clients = []
    args.demo_args = demo_args
    func: Callable[[argparse.Namespace, TextIO], int] = args.func
    try:
        return func(args, out)
    except (UsageError, certs_cli.CertsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except grpc.RpcError as exc:
        code = exc.code()
        print(f"error: {exc.details() or 'request failed'} ({code.name})", file=sys.stderr)
        return EXIT_UNREACHABLE if code in _RETRY_CODES else EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    finally:
        for client in args._clients:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
