"""The agent config's `lb:` section: which HAProxy backend follows which pool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vnfha.coordinator.confparse import Ctx, check_keys, choice, duration, name, tname

HEALTH_SOURCES = ("coordinator", "haproxy")
EXCLUDED_STATES = ("maint", "drain")


@dataclass(frozen=True)
class LbConfig:
    #: the active-active group whose pool this HAProxy backend serves
    group: str
    #: HAProxy's admin socket (`stats socket PATH level admin`)
    admin_socket: str
    #: the HAProxy backend holding one server per member
    backend: str
    #: member -> HAProxy server name; a member not listed uses its own name
    servers: Mapping[str, str] = field(default_factory=dict)
    #: what an excluded member's server is set to: maint (cut now) or drain
    excluded_state: str = "maint"
    #: coordinator: the pool decides alone. haproxy: HAProxy's own checks are also
    #: reported as member health (LB as the cluster manager)
    health_source: str = "coordinator"
    #: re-read HAProxy and re-apply this often (catches reloads and manual edits)
    reconcile_interval: float = 0.5
    #: the LB agent's own certificate (identity vnfha://lb/<node>); None: the agent's tls
    tls: Any = None


def parse_lb(ctx: Ctx, sec: Mapping[str, Any]) -> LbConfig:
    check_keys(ctx, "lb", sec, ("group", "admin_socket", "backend", "servers",
                                "excluded_state", "health_source", "reconcile_interval",
                                "tls"))
    for key in ("group", "admin_socket", "backend"):
        if key not in sec:
            ctx.fail(f"lb.{key} is required")
    sock = sec["admin_socket"]
    if not isinstance(sock, str) or not sock.startswith("/"):
        ctx.fail("lb.admin_socket must be the absolute path of HAProxy's admin socket "
                 "(haproxy.cfg: stats socket PATH level admin)")
    backend = sec["backend"]
    if not isinstance(backend, str) or not backend or any(c.isspace() or c in "/;"
                                                          for c in backend):
        ctx.fail(f"lb.backend ({backend!r}) must be an HAProxy backend name "
                 "(no spaces, '/' or ';')")
    raw = sec.get("servers") or {}
    if not isinstance(raw, Mapping):
        ctx.fail(f"lb.servers must map member names to HAProxy server names, got {tname(raw)}")
    servers: dict[str, str] = {}
    for member, server in raw.items():
        name(ctx, f"lb.servers key {member!r}", member)
        if not isinstance(server, str) or not server or any(c.isspace() or c in "/;"
                                                             for c in server):
            ctx.fail(f"lb.servers.{member} ({server!r}) must be an HAProxy server name")
        servers[member] = server
    if len(set(servers.values())) != len(servers):
        ctx.fail("lb.servers maps two members to the same HAProxy server")
    excluded = choice(ctx, "lb.excluded_state", sec.get("excluded_state", "maint"),
                      EXCLUDED_STATES)
    source = choice(ctx, "lb.health_source", sec.get("health_source", "coordinator"),
                    HEALTH_SOURCES)
    if source == "haproxy" and excluded == "maint":
        ctx.fail("lb.health_source haproxy needs lb.excluded_state drain: HAProxy stops "
                 "checking a server in maint, so it could never see it recover")
    from vnfha.coordinator.security.tls import parse_tls

    base = Path(ctx.source).parent if Path(ctx.source).is_file() else Path.cwd()
    tls = parse_tls(ctx, "lb.tls", sec.get("tls"), base)
    return LbConfig(group=name(ctx, "lb.group", sec["group"]), admin_socket=sock, tls=tls,
                    backend=backend, servers=servers, excluded_state=excluded,
                    health_source=source,
                    reconcile_interval=duration(ctx, "lb.reconcile_interval",
                                                sec.get("reconcile_interval", 0.5)))
