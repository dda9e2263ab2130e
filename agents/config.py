"""Agent configuration: one file per VM, validated at load like the coordinator's.

See docs/agent.md for every setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vnfha.coordinator.confparse import (
    ConfigError,
    Ctx,
    address,
    check_keys,
    choice,
    duration,
    fmt,
    integer,
    le,
    name,
    number,
    read_yaml,
    section,
)

__all__ = ["AgentConfig", "ConfigError", "LeaseConfig", "MemberConfig", "load_agent_config",
           "parse_agent_config"]


@dataclass(frozen=True)
class LeaseConfig:
    ttl: float = 0.6
    keepalive_interval: float = 0.1
    drift: float = 0.01
    margin: float = 0.05


@dataclass(frozen=True)
class MemberConfig:
    group: str
    member: str
    priority: int = 100
    #: command run on every role change: `CMD ROLE EPOCH GROUP MEMBER`
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentConfig:
    node: str
    coordinators: tuple[str, ...]
    members: tuple[MemberConfig, ...]
    address: str = ""
    lease: LeaseConfig = LeaseConfig()
    log_level: str = "info"
    log_format: str = "text"
    source: str = "<agent config>"


def load_agent_config(path: str | Path) -> AgentConfig:
    p = Path(path)
    return parse_agent_config(read_yaml(p), source=str(p))


def parse_agent_config(data: Any, source: str = "<agent config>") -> AgentConfig:
    ctx = Ctx(source)
    top = section(ctx, "(top level)", data)
    check_keys(ctx, "", top, ("node", "address", "coordinators", "lease", "members", "logging"))
    if "node" not in top:
        ctx.fail("node is required (this VM's name, as the coordinators will know it)")
    node = name(ctx, "node", top["node"])
    addr = top.get("address", "")
    if not isinstance(addr, str):
        ctx.fail("address must be a string")
    coords = top.get("coordinators")
    if not isinstance(coords, list) or not coords:
        ctx.fail("coordinators must be a non-empty list of 'host:port' (every coordinator "
                 "of the cluster: the lease needs a majority of them)")
    endpoints = tuple(address(ctx, f"coordinators[{i}]", c) for i, c in enumerate(coords))
    if len(set(endpoints)) != len(endpoints):
        ctx.fail("coordinators lists the same endpoint twice")
    lease = _parse_lease(ctx, section(ctx, "lease", top.get("lease")))
    members = _parse_members(ctx, top.get("members"))
    log = section(ctx, "logging", top.get("logging"))
    check_keys(ctx, "logging", log, ("level", "format"))
    level = choice(ctx, "logging.level", str(log.get("level", "info")).lower(),
                   ("debug", "info", "warning", "error"))
    fmt_ = choice(ctx, "logging.format", log.get("format", "text"), ("text", "json"))
    return AgentConfig(node=node, coordinators=endpoints, members=members, address=addr,
                       lease=lease, log_level=level, log_format=fmt_, source=source)


def _parse_lease(ctx: Ctx, sec: Mapping[str, Any]) -> LeaseConfig:
    check_keys(ctx, "lease", sec, ("ttl", "keepalive_interval", "drift", "margin"))
    d = LeaseConfig()
    ttl = duration(ctx, "lease.ttl", sec.get("ttl", d.ttl))
    interval = duration(ctx, "lease.keepalive_interval",
                        sec.get("keepalive_interval", d.keepalive_interval))
    drift = number(ctx, "lease.drift", sec.get("drift", d.drift))
    margin = number(ctx, "lease.margin", sec.get("margin", d.margin))
    if not 0 <= drift < 0.5:
        ctx.fail(f"lease.drift ({fmt(drift)}) must be in [0, 0.5)")
    if margin < 0:
        ctx.fail(f"lease.margin ({fmt(margin)}) must be >= 0")
    if not le(interval, ttl / 3):
        ctx.fail(f"lease.keepalive_interval ({fmt(interval)}) must be <= lease.ttl/3 "
                 f"({fmt(ttl / 3)}): two lost keepalives must not end the lease")
    usable = ttl * (1 - drift) - margin
    if usable <= 2 * interval:
        ctx.fail(f"lease.ttl ({fmt(ttl)}) leaves {fmt(usable)}s of lease after drift and "
                 f"margin; it must exceed 2 x keepalive_interval ({fmt(2 * interval)})")
    return LeaseConfig(ttl=ttl, keepalive_interval=interval, drift=drift, margin=margin)


def _parse_members(ctx: Ctx, raw: Any) -> tuple[MemberConfig, ...]:
    if not isinstance(raw, list) or not raw:
        ctx.fail("members must be a non-empty list (the VNFCs this VM hosts)")
    out: list[MemberConfig] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(raw):
        where = f"members[{i}]"
        sec = section(ctx, where, item)
        check_keys(ctx, where, sec, ("group", "member", "priority", "notify"))
        for key in ("group", "member"):
            if key not in sec:
                ctx.fail(f"{where}.{key} is required")
        group = name(ctx, f"{where}.group", sec["group"])
        member = name(ctx, f"{where}.member", sec["member"])
        if (group, member) in seen:
            ctx.fail(f"{where}: {group}/{member} is listed twice")
        seen.add((group, member))
        prio = integer(ctx, f"{where}.priority", sec.get("priority", 100))
        notify = sec.get("notify", ())
        if isinstance(notify, str):
            notify = (notify,)
        if not isinstance(notify, (list, tuple)) or not all(isinstance(a, str) and a
                                                            for a in notify):
            ctx.fail(f"{where}.notify must be a command (string or list of strings)")
        out.append(MemberConfig(group=group, member=member, priority=prio,
                                notify=tuple(notify)))
    return tuple(out)
