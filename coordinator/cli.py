"""`vnfha`: run a coordinator, or talk to a running cluster through AdminService.

Any coordinator answers admin calls (writes are forwarded to the leader), so the
client tries each `--endpoint` in turn and only gives up when none answers: an
operator's tool must keep working while a coordinator is down, which is exactly
when it is needed. Output formatting lives in pure functions (`format_status`,
`format_event`, ...) so it is testable without a server. See docs/cli.md.

Start-up time is part of every scripted switchover, so this module imports only the
standard library up front: gRPC, the generated stubs, YAML and the config loaders are
imported on first use (`_LazyModule`), and `--version`, `completion` and `config check`
never load the gRPC stack at all (bench/cli_startup.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from vnfha.coordinator.names import safe
from vnfha.coordinator.security import certs_cli

if TYPE_CHECKING:
    import grpc

    from vnfha.coordinator.security import tls as _tls
    from vnfha.coordinator.security.tls import TlsFiles
    from vnfha.v1 import admin_pb2, admin_pb2_grpc, types_pb2


class _LazyModule:
    """A module imported on its first attribute access, so a command that never needs
    it does not pay for importing it (gRPC alone is ~0.1 s of a client's start-up)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


if not TYPE_CHECKING:
    grpc = _LazyModule("grpc")
    admin_pb2 = _LazyModule("vnfha.v1.admin_pb2")
    admin_pb2_grpc = _LazyModule("vnfha.v1.admin_pb2_grpc")
    types_pb2 = _LazyModule("vnfha.v1.types_pb2")
    # mTLS channel credentials (imports gRPC): loaded when a client is made
    _tls = _LazyModule("vnfha.coordinator.security.tls")

DEFAULT_ENDPOINT = "127.0.0.1:7401"
# mTLS files from the environment (the same names as security.tls.ENV_*; kept here so
# building the parser does not import gRPC)
ENV_CA, ENV_CERT, ENV_KEY = "VNFHA_CACERT", "VNFHA_CERT", "VNFHA_KEY"
ENDPOINT_ENV = "VNFHA_ENDPOINT"
#: where `vnfha agent status` looks without --socket or --config (docs/agent.md)
DEFAULT_AGENT_STATUS_SOCKET = "/run/vnfha/agent-status.sock"

EXIT_OK = 0
#: the server refused the request (bad argument, unknown name, wrong state, conflict)
EXIT_REFUSED = 1
#: bad command line or bad file: nothing was sent
EXIT_USAGE = 2
#: no coordinator answered
EXIT_UNREACHABLE = 3
#: the change is committed but its effect was not observed within --wait: a switchover
#: or failover whose new active is not promoted yet, or is promoted but has not yet
#: reported that it serves (holds the VIP). Nothing to retry; `vnfha status` shows more.
EXIT_NOT_CONFIRMED = 4

#: exit status when stdout is a pipe its reader closed (`vnfha status | head -1`): what a
#: shell reports for a process killed by SIGPIPE (128 + 13), as for other Unix tools
EXIT_PIPE_CLOSED = 141

OUTPUT_FORMATS = ("table", "json", "yaml")


def new_request_id() -> str:
    """A random request id (32 hex digits, as uuid4().hex, without importing uuid)."""
    return os.urandom(16).hex()


class RawCall:
    """A unary call made without the generated stubs: the request already encoded, the
    answer decoded by `decode` (coordinator/cli_wire.py), so the command that sends it
    never imports protobuf."""

    def __init__(self, path: str, payload: bytes, decode: Callable[[bytes], Any]) -> None:
        self.path, self.payload, self.decode = path, payload, decode


def _retry_codes() -> frozenset[grpc.StatusCode]:
    """Codes that mean "this coordinator cannot answer now": try the next endpoint."""
    return frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class UsageError(Exception):
    """Bad command-line input detected after argparse (exit 2)."""


class Unreachable(Exception):
    """Every endpoint failed with UNAVAILABLE / DEADLINE_EXCEEDED (exit 3)."""


# --------------------------------------------------------------------------- endpoints


def parse_endpoints(value: str) -> list[str]:
    """'a:1, b:2' -> ['a:1', 'b:2'] (also unix:///path); raise UsageError on a malformed
    or empty list."""
    from vnfha.coordinator.confparse import parse_address  # light: no gRPC, no loaders

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

    def _channel(self, endpoint: str) -> grpc.Channel:
        if endpoint not in self._channels:
            # The unix admin socket is local root's: plaintext, no certificate.
            self._channels[endpoint] = (
                grpc.insecure_channel(endpoint) if self.tls is None or endpoint.startswith(
                    "unix:") else grpc.secure_channel(
                        endpoint, _tls.channel_credentials(self.tls),
                        options=[_tls.server_name_option("coordinator")]))
        return self._channels[endpoint]

    def _stub(self, endpoint: str) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self._channel(endpoint))

    def _rpc(self, endpoint: str, method: str | RawCall) -> Callable[..., Any]:
        if isinstance(method, RawCall):
            return self._channel(endpoint).unary_unary(
                method.path, request_serializer=None, response_deserializer=method.decode)
        return getattr(self._stub(endpoint), method)

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def call(self, method: str | RawCall, request: Any = None, timeout: float | None = None,
             start: int = 0) -> tuple[str, Any]:
        """Unary call; returns (answering endpoint, response). The request is sent unchanged
        to each endpoint, so writes carry one request_id and apply at most once. A
        RawCall carries its encoded request itself (`request` is unused)."""
        errors: list[str] = []
        n = len(self.endpoints)
        if isinstance(method, RawCall):
            request = method.payload
        for i in range(n):
            endpoint = self.endpoints[(start + i) % n]
            try:
                rpc = self._rpc(endpoint, method)
                return endpoint, rpc(request, timeout=timeout or self.timeout)
            except grpc.RpcError as exc:
                if exc.code() not in _retry_codes():
                    raise
                why = (exc.details() or "")[:200]  # e.g. "catching up: applied 12 < 40 ..."
                errors.append(f"{endpoint}: {exc.code().name}" + (f" ({why})" if why else ""))
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
                if exc.code() not in _retry_codes() and exc.code() != grpc.StatusCode.CANCELLED:
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


def member_role(group: admin_pb2.GroupStatus, member: admin_pb2.MemberStatus) -> str:
    """ROLE as shown. Active/standby groups: `active` or `standby`. In an active-active
    group every member serves, so `standby` would be false: what matters is whether it is
    in the load balancer's pool (`in-pool`, `out`; `member` until a pool is known)."""
    if group.mode != types_pb2.GROUP_MODE_ACTIVE_ACTIVE:
        return role_label(member.role)
    if not group.HasField("pool"):
        return "member"
    return "in-pool" if member.name in group.pool.in_service else "out"


def format_age(msg: Any, field: str = "lease_age_seconds") -> str:
    """'0.08s', or '-' when the (optional) field is unset."""
    if not msg.HasField(field):
        return "-"
    return f"{getattr(msg, field):.2f}s"


def member_flags(group: admin_pb2.GroupStatus, member: admin_pb2.MemberStatus,
                 maintenance_nodes: set[str],
                 stopped_nodes: frozenset[str] | set[str] = frozenset()) -> list[str]:
    flags = []
    if member.quarantined:
        flags.append("quarantined")
    if member.node in maintenance_nodes:
        flags.append("maintenance")
    if member.node in stopped_nodes:  # its agent was stopped (drained), not failed
        flags.append("stopped")
    if group.releasing and group.releasing == member.name:
        flags.append("releasing")
    if group.handover_to and group.handover_to == member.name:
        flags.append("handover-target")
    if group.HasField("pool") and member.name not in group.pool.in_service:
        flags.append("out-of-service")
    return flags


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart, no trailing blanks. Every cell goes through
    `names.safe`: what the server sends (names, reasons) cannot move the cursor, colour
    the terminal or break a row, and a long one is cut."""
    rows = [[safe(c) for c in row] for row in rows]
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
    header = (f"coordinator: {safe(c.node_id or '?')}{where}  leader: {safe(leader)}  "
              f"revision: {c.revision}" + (f"  backend: {safe(c.backend)}" if c.backend else ""))
    # Always shown: on is the default, so off is the exception an operator must see
    # (it means a coordinator outage drops every active within one TTL).
    header += (f"  failsafe: on (lease {status.failsafe_lease_ms / 1000:g}s)"
               if status.failsafe_lease_ms else "  failsafe: OFF")
    if status.paused:
        header += "  PAUSED (no automatic failover; vnfha resume)"
    if c.details.get("persist_fault"):  # this coordinator cannot write its raft journal
        header += f"\nNOT READY: {safe(c.details['persist_fault'], 300)}"
    maint = {n.name for n in status.nodes if n.maintenance}
    stopped = {n.name for n in status.nodes if n.stopped}
    rows: list[list[str]] = []
    for g in status.groups:
        if not g.members:
            rows.append([g.name, str(g.epoch), "-", "-", "-", "-", "-", ""])
        for m in g.members:
            rows.append([g.name, str(g.epoch), m.name, m.node, member_role(g, m),
                         health_label(m.health), format_age(m),
                         ",".join(member_flags(g, m, maint, stopped))])
    parts = [header, format_table(STATUS_HEADERS, rows)]
    idle = [n for n in status.nodes if n.maintenance and not any(
        m.node == n.name for g in status.groups for m in g.members)]
    if idle:
        parts.append("nodes in maintenance without members: "
                     + ", ".join(safe(n.name) for n in idle))
    for title, headers, section_rows in _status_sections(status):
        if section_rows:
            parts += ["", title, format_table(headers, section_rows)]
    return "\n".join(parts)


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
    open_states = (types_pb2.RECOVERY_STATE_AWAITING_LB, types_pb2.RECOVERY_STATE_REQUESTED)
    return [r for r in group.recoveries
            if r.state in open_states
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
    stopped = {n.name for n in status.nodes if n.stopped}
    return {
        "coordinator": {
            "node_id": c.node_id, "endpoint": endpoint, "is_leader": c.is_leader,
            "leader_id": c.leader_id or None, "leader_endpoint": c.leader_endpoint or None,
            "revision": c.revision, "backend": c.backend,
            "details": dict(sorted(c.details.items())),
        },
        "paused": status.paused,
        "failsafe_lease_ms": status.failsafe_lease_ms,
        "groups": [{
            "name": g.name, "mode": mode_label(g.mode), "vip": g.vip or None, "epoch": g.epoch,
            "active": g.active or None, "releasing": g.releasing or None,
            "handover_to": g.handover_to or None, "deleting": g.deleting,
            "members": [{
                "name": m.name, "node": m.node, "role": member_role(g, m),
                "health": health_label(m.health), "priority": m.priority,
                "quarantined": m.quarantined, "maintenance": m.node in maint,
                "lease_age_seconds": _opt(m, "lease_age_seconds"),
                "flags": member_flags(g, m, maint, stopped),
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
            "stopped": n.stopped, "lease_age_seconds": _opt(n, "lease_age_seconds"),
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
    """One line: time, kind, group/member@node, epoch, reason (every server-sent string
    escaped and bounded by `names.safe`: one event is always one line)."""
    line = (f"{event_time(ev)}  {safe(ev.kind):<16}  {safe(event_target(ev)):<24}  "
            f"epoch={ev.epoch}")
    if ev.actor:
        line += f"  by={safe(ev.actor)}"
    if ev.reason:
        line += f"  {safe(ev.reason)}"
    return line


def event_to_dict(ev: admin_pb2.Event) -> dict[str, Any]:
    return {"seq": ev.seq, "time": event_time(ev) if ev.HasField("time") else None,
            "kind": ev.kind, "group": ev.group or None, "member": ev.member or None,
            "node": ev.node or None, "epoch": ev.epoch, "reason": ev.reason,
            "actor": ev.actor or None}


def switchover_outcome(resp: Any) -> str:
    """What a switchover (or failover) answer says has happened, in words: what is
    committed and what the new active's agent has confirmed."""
    to = safe(resp.to_member or "-")
    if not resp.completed:
        return f"in progress: demotion committed, {to} not promoted yet"
    if not resp.serving:
        return (f"promotion committed; {to} has not yet reported that it "
                + ("holds the VIP" if resp.has_vip else "took the role"))
    if resp.vip_held:
        return f"completed; {to} holds the VIP"
    if resp.has_vip:
        return f"completed; {to} took the role, its agent does not manage the VIP"
    return f"completed; {to} took the role"


def format_switchover(group: str, resp: Any) -> str:
    return (f"switchover of {safe(group)}: {safe(resp.from_member or '-')} -> "
            f"{safe(resp.to_member or '-')} at epoch {resp.epoch} "
            f"({switchover_outcome(resp)})")


def switchover_doc(group: str, resp: Any) -> dict[str, Any]:
    """The -o json/yaml document of a switchover or failover."""
    return {"group": group, "from_member": resp.from_member or None,
            "to_member": resp.to_member or None, "epoch": resp.epoch,
            "completed": resp.completed, "serving": resp.serving,
            "vip_held": resp.vip_held}


def switchover_exit(resp: Any) -> int:
    """0 once the new active serves; EXIT_NOT_CONFIRMED while it is not (yet) known to."""
    return EXIT_OK if resp.completed and resp.serving else EXIT_NOT_CONFIRMED


def render(doc: Any, fmt: str) -> str:
    """A result document as JSON (indented) or YAML; the table form is each command's own."""
    if fmt == "json":
        return json.dumps(doc, indent=2)
    import yaml  # lazy: only -o yaml needs it

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).rstrip("\n")


def _print_result(args: argparse.Namespace, out: TextIO, doc: Any,
                  table: Callable[[], str]) -> None:
    """Print a command's result in the format asked for (-o table|json|yaml)."""
    text = table() if args.output == "table" else render(doc, args.output)
    print(text, file=out)


# --------------------------------------------------------------------------- commands


_daemon_ran = False  # console(): a daemon exits through the normal interpreter teardown


def _run_daemon(path: str, load: Callable[[str], Any], run: Callable[[Any], int]) -> int:
    """Load a config (a bad one is a usage error, exit 2), then run until stopped."""
    global _daemon_ran
    _daemon_ran = True
    from vnfha.coordinator.confparse import ConfigError

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
    except _tls.TlsError as exc:
        print(f"error: {path}: tls: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return int(run(cfg))


def _cmd_coordinator(args: argparse.Namespace, out: TextIO) -> int:
    from vnfha.coordinator.config import load_config
    from vnfha.coordinator.server import run  # lazy: pulls in raft, pysyncobj, the service

    return _run_daemon(args.config, load_config, run)


def _cmd_agent(args: argparse.Namespace, out: TextIO) -> int:
    if args.config is None:
        raise UsageError("vnfha agent needs --config FILE to run an agent (or an action: "
                         "vnfha agent status)")
    from vnfha.agents.config import load_agent_config
    from vnfha.agents.main import run

    return _run_daemon(args.config, load_agent_config, run)


def _agent_status_socket(args: argparse.Namespace) -> str:
    """--socket, else status.socket of --config FILE, else the default path."""
    if args.socket is not None and args.status_config is not None:
        raise UsageError("give --socket or --config, not both")
    path = args.socket
    if path is None and args.status_config is not None:
        from vnfha.agents.config import load_agent_config
        from vnfha.coordinator.confparse import ConfigError

        try:
            cfg = load_agent_config(args.status_config)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        if cfg.status_socket is None:
            raise UsageError(f"{args.status_config} sets no status.socket: that agent serves "
                             "no status (docs/agent.md)")
        path = cfg.status_socket
    path = path or DEFAULT_AGENT_STATUS_SOCKET
    if not path.startswith("/"):
        raise UsageError(f"--socket {path!r}: give an absolute path")
    if len(os.fsencode(path)) > 107:
        raise UsageError(f"--socket {safe(path)}: longer than 107 bytes (the unix socket "
                         "limit)")
    return path


def _cmd_agent_status(args: argparse.Namespace, out: TextIO) -> int:
    from vnfha.agents.status import StatusRefused, StatusUnavailable, fetch

    path = _agent_status_socket(args)
    try:
        doc = fetch(path, timeout=args.timeout)
    except StatusRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except StatusUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    _print_result(args, out, doc, lambda: format_agent_status(doc))
    return EXIT_OK


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}s"


def format_agent_status(doc: dict[str, Any]) -> str:
    """The agent's status document as text: a header, coordinators, members, fail-safe.
    Every value goes through `names.safe` (format_table, safe): it came over a socket."""
    lease = doc.get("lease") or {}
    if lease.get("held"):
        held = f"held, {_seconds(lease.get('remaining_seconds'))} left"
    else:
        held = "NOT HELD (no majority of coordinators acknowledged in time)"
    header = (f"agent: {safe(doc.get('node'))}  pid: {safe(doc.get('pid'))}  "
              f"up: {_seconds(doc.get('uptime_seconds'))}  lease: {held}  "
              f"(quorum {safe(lease.get('quorum'))} of {safe(lease.get('cluster_size'))})")
    coords = [[str(c.get("endpoint")), str(c.get("id") or "-"),
               _seconds(c.get("last_answer_age_seconds")), str(c.get("last_result") or "-"),
               str(c.get("acks", 0))] for c in doc.get("coordinators") or []]
    members = []
    for m in doc.get("members") or []:
        a = m.get("assignment")
        assigned = "-" if not a else (f"{a.get('role')}@{a.get('epoch')} "
                                      f"(rev {a.get('revision')})")
        members.append([str(m.get("group")), str(m.get("member")), str(m.get("role")),
                        str(m.get("epoch") or "-"), "healthy" if m.get("healthy")
                        else "unhealthy", str(m.get("vip") or "-"), _yes(m.get("vip_held")),
                        assigned, one_line(str(m.get("reason") or ""))])
    fs = doc.get("fail_safe") or {}
    safety = (f"fail-safe: guardian {safe(fs.get('guardian'))}, kernel lease "
              f"{safe(fs.get('kernel_lease'))}, VIPs "
              + ("managed" if fs.get("vip_managed") else "not managed (vip.manage: false)"))
    if fs.get("failed"):
        safety += f"\nFAILED (fail-stop, restart the agent): {safe(fs['failed'], 300)}"
    for key, why in (fs.get("blocked") or {}).items():
        safety += f"\nblocked {safe(key)}: {safe(why, 300)}"
    return "\n".join([
        header, format_table(("COORDINATOR", "ID", "LAST ANSWER", "RESULT", "ACKS"), coords),
        "", format_table(("GROUP", "MEMBER", "ROLE", "EPOCH", "HEALTH", "VIP", "VIP HELD",
                          "ASSIGNED", "REASON"), members),
        "", safety, *_agent_failsafe_lines(doc.get("failsafe"))])


def _agent_failsafe_lines(fs: Any) -> list[str]:
    """The failsafe part of `agent status`: the listener, and per group the setting or,
    while engaged, the epoch kept and the grantors (an older agent sends none)."""
    if not isinstance(fs, dict):
        return []
    listener = (safe(fs["listener"]) if fs.get("listener")
                else f"none ({safe(fs.get('no_listener_reason'), 200)})")
    answered = fs.get("answered") or {}
    lines = [f"failsafe: listener {listener}; answered {safe(answered.get('granted', 0))} "
             f"granted, {safe(answered.get('refused', 0))} refused"]
    for g in fs.get("groups") or []:
        if not isinstance(g, dict):
            continue
        if g.get("engaged"):
            grantors = ", ".join(safe(x) for x in g.get("grantors") or []) or "-"
            lines.append(f"failsafe ENGAGED {safe(g.get('group'))}: active at epoch "
                         f"{safe(g.get('epoch'))} on grants from {grantors}, "
                         f"{_seconds(g.get('remaining_seconds'))} left (no coordinator "
                         "quorum)")
        else:
            lease = g.get("lease_seconds") or 0
            lines.append(f"failsafe {safe(g.get('group'))}: "
                         + (f"on (lease {safe(lease)}s), not engaged" if lease else "off"))
    return lines


def _cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    if not args.watch and (args.interval is not None or args.count is not None):
        raise UsageError("--interval and --count go with --watch")
    client = _client(args)
    if args.watch:
        interval = 2.0 if args.interval is None else args.interval
        return watch_status(client, args.output, interval, args.count, out)
    endpoint, resp = client.call("GetStatus", admin_pb2.GetStatusRequest())
    _print_result(args, out, status_to_dict(resp, endpoint), lambda: format_status(resp, endpoint))
    return EXIT_OK


_CLEAR_SCREEN = "\x1b[H\x1b[2J"


def watch_status(client: AdminClient, fmt: str, interval: float, count: int | None,
                 out: TextIO, sleep: Callable[[float], None] = time.sleep) -> int:
    """Redraw the status every `interval` seconds until Ctrl-C (exit 0) or `count` frames.

    A coordinator outage does not end the watch (that is when it is needed): the frame
    shows the error and the next one tries every endpoint again. After `count` frames the
    exit status is that of the last one (0, or 3 if no coordinator answered)."""
    clear = fmt == "table" and out.isatty()
    code = EXIT_OK
    frame = 0
    try:
        while count is None or frame < count:
            if frame:
                sleep(interval)
            frame += 1
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            try:
                endpoint, resp = client.call("GetStatus", admin_pb2.GetStatusRequest())
                doc: Any = status_to_dict(resp, endpoint)
                table = format_status(resp, endpoint)
                code = EXIT_OK
            except Unreachable as exc:
                doc, table, code = {"error": str(exc)}, f"error: {exc}", EXIT_UNREACHABLE
            if fmt == "table":
                head = f"every {interval:g}s  {stamp}  (Ctrl-C to stop)"
                print((_CLEAR_SCREEN if clear else ("\n" if frame > 1 else ""))
                      + head + "\n" + table, file=out, flush=True)
            elif fmt == "json":
                print(json.dumps({"time": stamp, **doc}), file=out, flush=True)
            else:
                print("---\n" + render({"time": stamp, **doc}, "yaml"), file=out, flush=True)
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends
        return EXIT_OK
    return code


def _cmd_switchover(args: argparse.Namespace, out: TextIO) -> int:
    if args.wait is not None and args.wait < 0:
        raise UsageError("--wait must be >= 0")
    wait = args.wait if args.wait is not None else 0.0
    from vnfha.coordinator import cli_wire  # no protobuf on this path (start-up time)

    req = RawCall(cli_wire.SWITCHOVER, cli_wire.switchover_request(
        args.group, args.to or "", new_request_id(), int(wait * 1000)),
        cli_wire.switchover_answer)
    # The server waits up to wait_ms (0 means its default, 5 s) before answering.
    timeout = args.timeout + (wait if wait > 0 else 5.0)
    _, resp = _client(args).call(req, timeout=timeout)
    _print_result(args, out, switchover_doc(args.group, resp),
                  lambda: format_switchover(args.group, resp))
    return switchover_exit(resp)


def _cmd_maintenance(args: argparse.Namespace, out: TextIO) -> int:
    on = args.state == "on"
    req = admin_pb2.SetMaintenanceRequest(node=args.node, on=on, request_id=new_request_id())
    _, resp = _client(args).call("SetMaintenance", req)
    note = "" if resp.changed else " (unchanged)"
    doc = {"node": args.node, "maintenance": on, "changed": resp.changed}
    _print_result(args, out, doc, lambda: f"maintenance {args.state} for node {args.node}{note}")
    return EXIT_OK


def _wait_arg(args: argparse.Namespace) -> tuple[int, float]:
    """`--wait` as the request's wait_ms and the client deadline that allows for it."""
    if args.wait is not None and args.wait < 0:
        raise UsageError("--wait must be >= 0")
    wait = args.wait if args.wait is not None else 0.0
    return int(wait * 1000), args.timeout + (wait if wait > 0 else 5.0)


def _cmd_pause(args: argparse.Namespace, out: TextIO) -> int:
    paused = args.command == "pause"
    req = admin_pb2.SetPausedRequest(paused=paused, request_id=new_request_id())
    _, resp = _client(args).call("SetPaused", req)
    note = "" if resp.changed else " (unchanged)"
    word = "paused" if paused else "resumed"
    _print_result(args, out, {"paused": paused, "changed": resp.changed},
                  lambda: f"automatic failover {word}{note}")
    return EXIT_OK


DEFAULT_FAILSAFE_LEASE = 1.0
MAX_FAILSAFE_LEASE_MS = 60_000  # commands.MAX_FAILSAFE_LEASE_MS (not imported: start-up time)


def _cmd_failsafe(args: argparse.Namespace, out: TextIO) -> int:
    lease = DEFAULT_FAILSAFE_LEASE if args.lease is None else args.lease
    if args.state == "off":
        if args.lease is not None:
            raise UsageError("--lease goes with `failsafe on`")
        lease = 0.0
    lease_ms = round(lease * 1000)
    if args.state == "on" and not 1 <= lease_ms <= MAX_FAILSAFE_LEASE_MS:
        raise UsageError(f"--lease must be in (0, {MAX_FAILSAFE_LEASE_MS // 1000}] seconds")
    req = admin_pb2.SetFailsafeRequest(lease_ms=lease_ms, request_id=new_request_id())
    _, resp = _client(args).call("SetFailsafe", req)
    note = "" if resp.changed else " (unchanged)"
    word = f"on (lease {lease:g}s)" if lease_ms else "off"
    _print_result(args, out, {"failsafe_lease_ms": lease_ms, "changed": resp.changed},
                  lambda: f"failsafe {word}{note}")
    return EXIT_OK


def _cmd_failover(args: argparse.Namespace, out: TextIO) -> int:
    wait_ms, timeout = _wait_arg(args)
    from vnfha.coordinator import cli_wire  # no protobuf on this path (start-up time)

    req = RawCall(cli_wire.FAILOVER, cli_wire.failover_request(
        args.group, args.to, args.force, new_request_id(), wait_ms), cli_wire.switchover_answer)
    _, resp = _client(args).call(req, timeout=timeout)
    doc = switchover_doc(args.group, resp) | {"forced": args.force}
    _print_result(args, out, doc, lambda: "failover" + format_switchover(
        args.group, resp).removeprefix("switchover"))
    return switchover_exit(resp)


def _cmd_member_reset(args: argparse.Namespace, out: TextIO) -> int:
    req = admin_pb2.ResetMemberRequest(group=args.group, member=args.member,
                                       request_id=new_request_id())
    _, resp = _client(args).call("ResetMember", req)
    note = "quarantine cleared" if resp.changed else "was not quarantined (unchanged)"
    _print_result(args, out, {"group": args.group, "member": args.member,
                              "changed": resp.changed},
                  lambda: f"member {args.group}/{args.member}: {note}")
    return EXIT_OK


def _cmd_node_remove(args: argparse.Namespace, out: TextIO) -> int:
    wait_ms, timeout = _wait_arg(args)
    req = admin_pb2.RemoveNodeRequest(node=args.node, force=args.force,
                                      request_id=new_request_id(), wait_ms=wait_ms)
    _, resp = _client(args).call("RemoveNode", req, timeout=timeout)
    doc = {"node": args.node, "removed": resp.removed, "members": list(resp.members),
           "pending": list(resp.pending)}

    def table() -> str:
        if resp.removed:
            return (f"removed node {safe(args.node)} and {len(resp.members)} member(s)"
                    + (f": {', '.join(safe(m) for m in resp.members)}" if resp.members else ""))
        return (f"node {safe(args.node)}: waiting for {', '.join(safe(g) for g in resp.pending)}"
                " to release (in progress; run the command again)")

    _print_result(args, out, doc, table)
    return EXIT_OK


def _cmd_node_readmit(args: argparse.Namespace, out: TextIO) -> int:
    req = admin_pb2.ReadmitNodeRequest(node=args.node, request_id=new_request_id())
    _, resp = _client(args).call("ReadmitNode", req)
    note = "may register again" if resp.changed else "was not removed (unchanged)"
    _print_result(args, out, {"node": args.node, "changed": resp.changed},
                  lambda: f"node {safe(args.node)}: {note}")
    return EXIT_OK


def _cmd_group_delete(args: argparse.Namespace, out: TextIO) -> int:
    wait_ms, timeout = _wait_arg(args)
    req = admin_pb2.DeleteGroupRequest(group=args.group, force=args.force,
                                       request_id=new_request_id(), wait_ms=wait_ms)
    _, resp = _client(args).call("DeleteGroup", req, timeout=timeout)
    _print_result(args, out, {"group": args.group, "removed": resp.removed},
                  lambda: f"deleted group {safe(args.group)}" if resp.removed else
                  f"group {safe(args.group)}: waiting for its active to release "
                  "(in progress; run the command again)")
    return EXIT_OK


def _cmd_events(args: argparse.Namespace, out: TextIO) -> int:
    if args.limit < 0:
        raise UsageError("--limit must be >= 0")
    client = _client(args)
    _, resp = client.call("ListEvents", admin_pb2.ListEventsRequest(limit=args.limit))
    last = 0
    for ev in resp.events:
        _print_event(ev, args.output, out)
        last = max(last, ev.seq)
    if not args.follow:
        return EXIT_OK
    try:
        for ev in client.watch(after_seq=last):
            _print_event(ev, args.output, out)
    except KeyboardInterrupt:  # Ctrl-C is how --follow ends
        return EXIT_OK
    return EXIT_OK


def _print_event(ev: admin_pb2.Event, fmt: str, out: TextIO) -> None:
    """One event as it arrives: a line (table), a JSON Lines object, or a YAML document."""
    if fmt == "json":
        text = json.dumps(event_to_dict(ev))
    elif fmt == "yaml":
        text = "---\n" + render(event_to_dict(ev), "yaml")
    else:
        text = format_event(ev)
    print(text, file=out, flush=True)


def _cmd_group_apply(args: argparse.Namespace, out: TextIO) -> int:
    from vnfha.coordinator.config import ConfigError, load_groups_file

    try:
        groups = load_groups_file(args.file)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not groups:
        raise UsageError(f"{args.file}: groups is empty; nothing to apply")
    mode_to_pb = {"active-standby": types_pb2.GROUP_MODE_ACTIVE_STANDBY,
                  "active-active": types_pb2.GROUP_MODE_ACTIVE_ACTIVE}
    req = admin_pb2.ApplyGroupsRequest(
        groups=[admin_pb2.GroupSpec(name=g.name, mode=mode_to_pb[g.mode], vip=g.vip or "")
                for g in groups],
        request_id=new_request_id())
    _, resp = _client(args).call("ApplyGroups", req)
    names = [g.name for g in groups]
    _print_result(args, out, {"applied": names, "revision": resp.revision},
                  lambda: f"applied {len(groups)} group(s): {', '.join(names)} "
                          f"(revision {resp.revision})")
    return EXIT_OK


def detect_config_kind(data: Any) -> str | None:
    """'coordinator' or 'agent' from a config's top-level keys, None if it cannot tell:
    a coordinator config has `node_id`/`cluster`, an agent's `node`/`coordinators`."""
    if not isinstance(data, dict):
        return None
    coord = bool({"node_id", "cluster"} & data.keys())
    agent = bool({"node", "coordinators"} & data.keys())
    return None if coord == agent else ("coordinator" if coord else "agent")


def _cmd_config_check(args: argparse.Namespace, out: TextIO) -> int:
    """Validate a config file with the loader the daemon uses; nothing is started."""
    from pathlib import Path

    from vnfha.coordinator.confparse import ConfigError, read_yaml

    try:
        kind = args.kind
        if kind is None:
            kind = detect_config_kind(read_yaml(Path(args.file)))
            if kind is None:
                raise UsageError(f"{args.file}: cannot tell a coordinator config (node_id, "
                                 "cluster) from an agent config (node, coordinators); "
                                 "pass --kind coordinator or --kind agent")
        if kind == "coordinator":
            from vnfha.coordinator.config import load_config

            c = load_config(args.file)
            what = (f"node {c.node_id}, {len(c.cluster.members)} coordinator(s), "
                    f"store {c.store.backend}, {len(c.groups)} group(s)")
        else:
            from vnfha.agents.config import load_agent_config

            a = load_agent_config(args.file)
            what = (f"node {a.node}, {len(a.coordinators)} coordinator(s), "
                    f"{len(a.members)} member(s)")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    doc = {"file": args.file, "kind": kind, "valid": True, "summary": what}
    _print_result(args, out, doc, lambda: f"{args.file}: valid {kind} config ({what})")
    return EXIT_OK


def _cmd_completion(args: argparse.Namespace, out: TextIO) -> int:
    print(completion_script(build_parser(), args.shell), file=out)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    try:
        demo = importlib.import_module("vnfha_lab.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "vnfha_lab.demo":
            raise
        print("error: the demo is part of the lab harness, which this installation lacks "
              "(install it with: pip install ./lab, as scripts/setup.sh does)",
              file=sys.stderr)
        return EXIT_REFUSED
    result = demo.main(list(args.demo_args))
    return int(result or 0)


def _client(args: argparse.Namespace) -> AdminClient:
    tls = None
    # Without any TLS flag or variable the TLS module (and what it imports) is not needed.
    if any((args.cacert, args.cert, args.key, os.environ.get(ENV_CA),
            os.environ.get(ENV_CERT), os.environ.get(ENV_KEY))):
        try:
            tls = _tls.from_env_or_args(args.cacert, args.cert, args.key)
        except _tls.TlsError as e:
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def package_version() -> str:
    """The installed package's version (its metadata, so a version derived from git tags
    at build time shows up here unchanged); 'unknown' when run from a bare checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vnfha")
    except PackageNotFoundError:
        return "unknown"


class _VersionAction(argparse.Action):
    """`--version`: reads the metadata only when asked (it costs an import)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0,
                         help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"vnfha {package_version()}")
        parser.exit()


def add_global_options(p: argparse.ArgumentParser, top: bool) -> None:
    """The options every command accepts, before or after the command word.

    Only the top-level parser (`top`) carries the defaults. A subcommand's copy defaults
    to SUPPRESS, so it sets the value only when given there: otherwise argparse would
    reset a value given before the command word back to the default."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    g = p.add_argument_group("global options (before or after the command)")
    g.add_argument("--endpoint", default=default(os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT),
                   metavar="HOST:PORT[,HOST:PORT...]",
                   help=f"coordinators to ask, tried in order (env {ENDPOINT_ENV}, "
                        f"default {DEFAULT_ENDPOINT})")
    g.add_argument("--timeout", type=_positive_float, default=default(5.0), metavar="SECONDS",
                   help="per-call deadline (default 5)")
    g.add_argument("-o", "--output", choices=OUTPUT_FORMATS, default=default("table"),
                   help="output format (default table)")
    g.add_argument("--json", dest="output", action="store_const", const="json",
                   default=argparse.SUPPRESS, help="same as -o json")
    g.add_argument("--cacert", metavar="FILE", default=default(None),
                   help=f"CA bundle for mTLS (env {ENV_CA})")
    g.add_argument("--cert", metavar="FILE", default=default(None),
                   help=f"your certificate, e.g. vnfha://admin/NAME (env {ENV_CERT})")
    g.add_argument("--key", metavar="FILE", default=default(None),
                   help=f"its private key (env {ENV_KEY})")


_GLOBAL_OPTS_WITH_VALUE = ("--endpoint", "--timeout", "-o", "--output", "--cacert", "--cert",
                           "--key")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vnfha", description="vnfha: high-availability coordinator for telecom VNFs.",
        epilog="exit codes: 0 ok, 1 refused by the server, 2 usage or config error, "
               "3 no coordinator reachable, 4 committed but not yet confirmed "
               "(switchover, failover), 130 interrupted, 141 output pipe closed")
    p.add_argument("--version", action=_VersionAction, help="print the version and exit")
    add_global_options(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(parent: Any, name: str, func: Callable[..., int], help: str,
                **kw: Any) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, description=help, **kw)
        add_global_options(sp, top=False)
        sp.set_defaults(func=func)
        return sp

    c = command(sub, "coordinator", _cmd_coordinator, "run a coordinator")
    c.add_argument("--config", required=True, metavar="FILE", help="coordinator YAML config")

    a = command(sub, "agent", _cmd_agent, "run the agent of one VM (--config FILE), or ask "
                "the one running here (agent status)")
    a.add_argument("--config", metavar="FILE", help="agent YAML config")
    asub = a.add_subparsers(dest="agent_command", metavar="ACTION")
    ast = command(asub, "status", _cmd_agent_status,
                  "what this VM's agent believes: lease, coordinators, VIPs, assignments")
    ast.add_argument("--socket", metavar="PATH",
                     help=f"the agent's status socket (default: status.socket of --config "
                          f"FILE, else {DEFAULT_AGENT_STATUS_SOCKET})")
    ast.add_argument("--config", dest="status_config", metavar="FILE",
                     help="read the socket path from this agent config")

    s = command(sub, "status", _cmd_status, "groups, members, roles and health")
    s.add_argument("-w", "--watch", action="store_true",
                   help="redraw every --interval seconds until Ctrl-C")
    s.add_argument("--interval", type=_positive_float, metavar="SECONDS",
                   help="with --watch: seconds between redraws (default 2)")
    s.add_argument("--count", type=_positive_int, metavar="N",
                   help="with --watch: stop after N redraws (default: until Ctrl-C)")

    sw = command(sub, "switchover", _cmd_switchover, "planned switchover of a group")
    sw.add_argument("group")
    sw.add_argument("--to", metavar="MEMBER", help="target member (default: best standby)")
    sw.add_argument("--wait", type=float, metavar="SECONDS",
                    help="how long the server waits for the new active to serve (default 5)")

    m = command(sub, "maintenance", _cmd_maintenance, "put a node in or out of maintenance")
    m.add_argument("node")
    m.add_argument("state", choices=("on", "off"))

    command(sub, "pause", _cmd_pause, "pause automatic failover (cluster-wide)")
    command(sub, "resume", _cmd_pause, "resume automatic failover")

    fs = command(sub, "failsafe", _cmd_failsafe,
                 "keep actives serving through a coordinator outage (cluster-wide)")
    fs.add_argument("state", choices=("on", "off"))
    fs.add_argument("--lease", type=_positive_float, metavar="SECONDS",
                    help="with on: the failsafe lease (default 1)")

    fo = command(sub, "failover", _cmd_failover, "manual failover of a group to a member")
    fo.add_argument("group")
    fo.add_argument("--to", required=True, metavar="MEMBER", help="the member to make active")
    fo.add_argument("--force", action="store_true",
                    help="also to a healthy member that is quarantined")
    fo.add_argument("--wait", type=float, metavar="SECONDS",
                    help="how long the server waits for the new active to serve (default 5)")

    mb = command(sub, "member", _missing_action, "manage members")
    mbsub = mb.add_subparsers(dest="member_command", metavar="ACTION", required=True)
    mr = command(mbsub, "reset", _cmd_member_reset, "clear a member's quarantine")
    mr.add_argument("group")
    mr.add_argument("member")

    nd = command(sub, "node", _missing_action, "manage nodes")
    ndsub = nd.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    nr = command(ndsub, "remove", _cmd_node_remove, "forget a node and its members")
    nr.add_argument("node")
    nr.add_argument("--force", action="store_true",
                    help="hand its active roles over first instead of refusing")
    nr.add_argument("--wait", type=float, metavar="SECONDS",
                    help="with --force: how long the server waits for the releases "
                         "(default 5)")
    na = command(ndsub, "readmit", _cmd_node_readmit, "let a removed node register again")
    na.add_argument("node")

    e = command(sub, "events", _cmd_events, "recent events; --follow to stream new ones")
    e.add_argument("--follow", "-f", action="store_true", help="keep streaming until Ctrl-C")
    e.add_argument("--limit", type=int, default=0, metavar="N",
                   help="at most N recent events (default: all kept)")

    g = command(sub, "group", _missing_action, "manage groups")
    gsub = g.add_subparsers(dest="group_command", metavar="ACTION", required=True)
    ga = command(gsub, "apply", _cmd_group_apply, "create or update groups from a YAML file")
    ga.add_argument("-f", "--file", required=True, metavar="FILE",
                    help="YAML with a top-level 'groups:' list")
    gd = command(gsub, "delete", _cmd_group_delete, "delete a group and its members")
    gd.add_argument("group")
    gd.add_argument("--force", action="store_true",
                    help="demote its active first (nobody is promoted) instead of refusing")
    gd.add_argument("--wait", type=float, metavar="SECONDS",
                    help="with --force: how long the server waits for the release (default 5)")

    cf = command(sub, "config", _missing_action, "work with config files")
    cfsub = cf.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    cc = command(cfsub, "check", _cmd_config_check,
                 "validate a coordinator or agent config file (nothing is started)")
    cc.add_argument("file", metavar="FILE")
    cc.add_argument("--kind", choices=("coordinator", "agent"),
                    help="what FILE is (default: told from its top-level keys)")

    co = command(sub, "completion", _cmd_completion,
                 "print a shell completion script: "
                 "source <(vnfha completion bash)")
    co.add_argument("shell", choices=("bash", "zsh"))

    certs_cli.add_parser(sub)

    # Everything after `demo` belongs to the demo's own parser (see _split_demo).
    d = sub.add_parser("demo", help="run the local demo (arguments go to the demo)",
                       add_help=False)
    d.set_defaults(func=_cmd_demo)
    return p


def _missing_action(args: argparse.Namespace, out: TextIO) -> int:
    raise UsageError("an ACTION is required")  # unreachable: argparse requires one


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


# --------------------------------------------------------------------------- completion


def command_tree(p: argparse.ArgumentParser, path: tuple[str, ...] = ()
                 ) -> Iterator[tuple[tuple[str, ...], list[str], list[str]]]:
    """(command path, words to offer, options that take a value) for every command, read
    from the parser itself so completion cannot drift from the commands."""
    words: list[str] = []
    valued: list[str] = []
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sp in action.choices.items():
                words.append(name)
                children.append((name, sp))
        elif action.option_strings:
            if action.help == argparse.SUPPRESS:
                continue
            words += action.option_strings
            if action.nargs != 0:
                valued += action.option_strings
        elif action.choices:  # a positional with fixed words: maintenance NODE on|off
            words += [str(c) for c in action.choices]
    yield path, words, valued
    for name, sp in children:
        if name != "demo":
            yield from command_tree(sp, (*path, name))


#: option values the script can offer; other valued options complete file names
_VALUE_WORDS = {("-o", "--output"): OUTPUT_FORMATS, ("--kind",): ("coordinator", "agent")}
_FILE_OPTIONS = ("--config", "-f", "--file")


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """A bash completion function for `vnfha` (zsh loads it through bashcompinit).

    Generated from the parser: it walks the words typed so far to find the command
    (skipping options and their values), then offers that command's subcommands and
    options, the fixed values of -o and --kind, and file names for FILE arguments. An
    option is matched as "command/option", because one spelling may take a value in one
    command and not in another (`events -f` follows, `group apply -f FILE` reads)."""
    tree = list(command_tree(parser))
    commands = {path for path, _, _ in tree}

    flags = {w for _, words, valued in tree for w in words
             if w.startswith("-") and w not in valued}

    def patterns(opts: Sequence[str]) -> str:
        """'*/--endpoint|"group apply/-f"|...': where each of `opts` takes a value (in any
        command, unless the same spelling is a flag somewhere)."""
        out: list[str] = []
        for path, _, valued in tree:
            for o in valued:
                pat = f'"{" ".join(path)}/{o}"' if o in flags else f"*/{o}"
                if o in opts and pat not in out:
                    out.append(pat)
        return "|".join(out)

    valued = sorted({o for _, _, v in tree for o in v})
    lines = ["# vnfha shell completion, generated by `vnfha completion " + shell + "`",
             "# load it with: source <(vnfha completion " + shell + ")"]
    if shell == "zsh":
        lines.append("autoload -U +X bashcompinit && bashcompinit")
    lines += [
        "_vnfha() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local path="" words="" i w skip=0',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        w="${COMP_WORDS[i]}"',
        "        if ((skip)); then skip=0; continue; fi",
        '        case "$path/$w" in',
        f"            {patterns(valued)}) skip=1; continue ;;",
        "            */-*) continue ;;",
    ]
    known = [f'"{" ".join(path)}/{sub}"' for path, words, _ in tree for sub in words
             if (*path, sub) in commands]
    lines += ["            " + "|".join(known) + ') path="${path:+$path }$w" ;;',
              "        esac", "    done", '    case "$path/$prev" in']
    for opts, values in _VALUE_WORDS.items():
        if patterns(opts):
            lines.append(f"        {patterns(opts)}) "
                         f"COMPREPLY=($(compgen -W \"{' '.join(values)}\" -- \"$cur\")); return ;;")
    if patterns(_FILE_OPTIONS):
        lines.append(f"        {patterns(_FILE_OPTIONS)}) "
                     "COMPREPLY=($(compgen -f -- \"$cur\")); return ;;")
    others = [o for o in valued if o not in _FILE_OPTIONS
              and not any(o in k for k in _VALUE_WORDS)]
    if patterns(others):
        lines.append(f"        {patterns(others)}) COMPREPLY=(); return ;;")
    lines += ["    esac", '    case "$path" in']
    for path, words, _ in tree:
        lines.append(f'        "{" ".join(path)}") words="{" ".join(words)}" ;;')
    lines += ["    esac",
              '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
              "}",
              "complete -o default -F _vnfha vnfha"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _stdout_closed() -> int:
    """The reader of our stdout went away (`vnfha status | head -1`): stop quietly. Point
    stdout at /dev/null so the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_PIPE_CLOSED


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the `vnfha` console script; returns the exit code."""
    out = out or sys.stdout
    parser = build_parser()
    argv, demo_args = _split_demo(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # --help into a closed pipe
            return _stdout_closed()
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except BrokenPipeError:
        return _stdout_closed()
    args._clients = []
    args.demo_args = demo_args
    func: Callable[[argparse.Namespace, TextIO], int] = args.func
    try:
        code = func(args, out)
        out.flush()
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except (UsageError, certs_cli.CertsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except grpc.RpcError as exc:
        code = exc.code()
        details = safe(exc.details() or "request failed", 500)
        print(f"error: {details} ({code.name})", file=sys.stderr)
        return EXIT_UNREACHABLE if code in _retry_codes() else EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    finally:
        for client in args._clients:
            client.close()


def console() -> None:
    """The `vnfha` script: main(), then, after a client command, exit at once with its
    code once stdout and stderr are flushed, skipping the interpreter's teardown (module
    clean-up and gRPC's shutdown cost about a fifth of a short command's CPU;
    bench/README.md). A daemon (`coordinator`, `agent`) exits the normal way, so its
    atexit handlers and log handlers run."""
    code = main()
    if _daemon_ran:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: main() already chose the code
            pass
    os._exit(code)


if __name__ == "__main__":
    console()
