"""Agent configuration: one file per VM, validated at load like the coordinator's.

See docs/agent.md for every setting.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vnfha.coordinator import names
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
    said,
    section,
)
from vnfha.coordinator.metrics_config import MetricsConfig, parse_metrics
from vnfha.coordinator.security.tls import TlsFiles, parse_tls

IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")

__all__ = ["AgentConfig", "ConfigError", "LeaseConfig", "MemberConfig", "load_agent_config",
           "parse_agent_config"]


@dataclass(frozen=True)
class LeaseConfig:
    ttl: float = 0.25
    keepalive_interval: float = 0.06
    drift: float = 0.01
    margin: float = 0.05


@dataclass(frozen=True)
class VipConfig:
    #: interface the group VIPs go on (the address itself comes from the group)
    interface: str = "eth0"
    #: gratuitous ARPs / unsolicited NAs sent right after claiming
    announce_count: int = 3
    announce_interval: float = 0.02
    #: re-announce held VIPs this often (switches and peers forget)
    refresh_interval: float = 5.0
    #: kernel lifetime of a held VIP, refreshed while held: if the agent is killed
    #: (SIGKILL, OOM) the kernel drops the VIP by itself this many seconds later.
    #: 0 disables. Whole seconds, minimum 2: a backstop, not the fast path.
    lifetime: int = 2
    #: set False to run without touching addresses (roles and hooks only)
    manage: bool = True
    #: kernel-enforced lease (nftables set with millisecond timeouts, agents/kernellease.py):
    #: "on" (refuse to start without nft), "off", or "auto" (on where nft is installed)
    kernel_lease: str = "auto"


@dataclass(frozen=True)
class MemberConfig:
    group: str
    member: str
    priority: int = 100
    #: command run on every role change: `CMD ROLE EPOCH GROUP MEMBER`
    notify: tuple[str, ...] = ()
    #: a notify hook running longer is killed and the member fail-stopped
    notify_timeout: float = 10.0
    #: VIP interface for this member's group, overriding vip.interface
    vip_interface: str | None = None
    #: health checks (agents.health.CheckSpec); all must pass for "healthy"
    checks: tuple[Any, ...] = ()


@dataclass(frozen=True)
class AgentConfig:
    node: str
    coordinators: tuple[str, ...]
    members: tuple[MemberConfig, ...]
    address: str = ""
    lease: LeaseConfig = LeaseConfig()
    vip: VipConfig = VipConfig()
    #: unix socket of the role API for VNFCs; None: not served
    role_api_socket: str | None = None
    #: unix socket of `vnfha agent status` (agents/status.py, mode 0600); None: not served
    status_socket: str | None = None
    log_level: str = "info"
    log_format: str = "text"
    source: str = "<agent config>"
    #: keep a local HAProxy in step with an active-active pool (agents/lb); None: off
    lb: Any = None
    #: mTLS to the coordinators (identity vnfha://node/<node>); None: plaintext
    tls: TlsFiles | None = None
    #: explicitly allow plaintext to coordinators that are not on loopback
    insecure: bool = False
    #: real-time scheduling + locked memory for the agent and its guardian (auto|on|off)
    realtime: str = "auto"
    realtime_priority: int = 10
    #: the /metrics, /livez, /readyz listener (docs/metrics.md); off by default
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    #: the failsafe listener's port on `address` (FailsafeService, mTLS); 0: none, and
    #: this node then neither grants failsafe leases nor can an active of its be kept
    #: by them (docs/design.md, "Failsafe"). DEFAULT_FAILSAFE_PORT when tls and address
    #: are set and the file does not say otherwise.
    failsafe_port: int = 0
    #: why there is no failsafe listener ("" when there is one): said once at start
    failsafe_off_reason: str = ""

    @property
    def failsafe_endpoint(self) -> str:
        """host:port the other members' agents reach the failsafe listener at ("": none)."""
        if not self.failsafe_port:
            return ""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.failsafe_port}"

    #: keep alive over the UDP fast path where a coordinator offers it (agents/fastpath.py)
    fastpath: bool = True


def load_agent_config(path: str | Path) -> AgentConfig:
    p = Path(path)
    return parse_agent_config(read_yaml(p), source=str(p), base_dir=p.resolve().parent)


def parse_agent_config(data: Any, source: str = "<agent config>",
                       base_dir: Path | None = None) -> AgentConfig:
    ctx = Ctx(source)
    top = section(ctx, "(top level)", data)
    check_keys(ctx, "", top, ("node", "address", "coordinators", "lease", "vip", "role_api",
                              "status", "members", "logging", "lb", "tls", "insecure",
                              "realtime", "metrics", "failsafe", "fastpath"))
    if "node" not in top:
        ctx.fail("node is required (this VM's name, as the coordinators will know it)")
    node = name(ctx, "node", top["node"])
    addr = top.get("address", "")
    try:
        addr = names.check_address(addr)  # the coordinators apply the same rule
    except names.InvalidValue as e:
        ctx.fail(f"address: {e}")
    coords = top.get("coordinators")
    if not isinstance(coords, list) or not coords:
        ctx.fail("coordinators must be a non-empty list of 'host:port' (every coordinator "
                 "of the cluster: the lease needs a majority of them)")
    endpoints = tuple(address(ctx, f"coordinators[{i}]", c) for i, c in enumerate(coords))
    if len(set(endpoints)) != len(endpoints):
        ctx.fail("coordinators lists the same endpoint twice")
    lease = _parse_lease(ctx, section(ctx, "lease", top.get("lease")))
    vip = _parse_vip(ctx, section(ctx, "vip", top.get("vip")))
    role_api = section(ctx, "role_api", top.get("role_api"))
    check_keys(ctx, "role_api", role_api, ("socket",))
    socket_path = role_api.get("socket")
    if socket_path is not None and (not isinstance(socket_path, str) or not socket_path
                                    or not socket_path.startswith("/")):
        ctx.fail("role_api.socket must be an absolute path to a unix socket")
    status = section(ctx, "status", top.get("status"))
    check_keys(ctx, "status", status, ("socket",))
    status_socket = status.get("socket")
    if status_socket is not None and (not isinstance(status_socket, str)
                                      or not status_socket.startswith("/")):
        ctx.fail("status.socket must be an absolute path to a unix socket")
    if status_socket is not None and status_socket == socket_path:
        ctx.fail("status.socket and role_api.socket must be different paths")
    members = _parse_members(ctx, top.get("members"))
    log = section(ctx, "logging", top.get("logging"))
    check_keys(ctx, "logging", log, ("level", "format"))
    level = choice(ctx, "logging.level", str(log.get("level", "info")).lower(),
                   ("debug", "info", "warning", "error"))
    fmt_ = choice(ctx, "logging.format", log.get("format", "text"), ("text", "json"))
    lb = None
    if top.get("lb") is not None:
        from vnfha.agents.lb.config import parse_lb  # the LB adapter's own settings

        lb = parse_lb(ctx, section(ctx, "lb", top["lb"]))
    rt = section(ctx, "realtime", top.get("realtime"))
    check_keys(ctx, "realtime", rt, ("mode", "priority"))
    rt_mode = choice(ctx, "realtime.mode", rt.get("mode", "auto"), ("auto", "on", "off"))
    rt_prio = integer(ctx, "realtime.priority", rt.get("priority", 10))
    if not 1 <= rt_prio <= 99:
        ctx.fail(f"realtime.priority ({rt_prio}) must be between 1 and 99 (SCHED_FIFO)")
    base = Path(source).parent if Path(source).is_file() else Path.cwd()
    tls = parse_tls(ctx, "tls", top.get("tls"), base)
    insecure = top.get("insecure", False)
    if not isinstance(insecure, bool):
        ctx.fail("insecure must be true or false")
    remote = [e for e in endpoints if not _loopback(e)]
    if tls is None and not insecure and remote:
        ctx.fail(f"tls (ca_file, cert_file, key_file) is required to talk to coordinators "
                 f"that are not on loopback ({', '.join(remote)}): the agent proves it is "
                 f"node {node} with its certificate (docs/security.md); set insecure: true "
                 f"to run a lab without TLS")
    fs = section(ctx, "failsafe", top.get("failsafe"))
    check_keys(ctx, "failsafe", fs, ("port",))
    fs_port, fs_off = _failsafe_port(ctx, fs, addr, tls is not None)
    fast = section(ctx, "fastpath", top.get("fastpath"))
    check_keys(ctx, "fastpath", fast, ("enabled",))
    fast_on = fast.get("enabled", True)
    if not isinstance(fast_on, bool):
        ctx.fail("fastpath.enabled must be true or false")
    return AgentConfig(node=node, coordinators=endpoints, members=members, address=addr,
                       lease=lease, vip=vip, role_api_socket=socket_path,
                       status_socket=status_socket, log_level=level,
                       log_format=fmt_, source=source, lb=lb, tls=tls, insecure=insecure,
                       realtime=rt_mode, realtime_priority=rt_prio,
                       metrics=parse_metrics(ctx, top.get("metrics"), base_dir or Path.cwd()),
                       failsafe_port=fs_port, failsafe_off_reason=fs_off, fastpath=fast_on)


#: The failsafe listener's port when tls and address are set and failsafe.port is not.
DEFAULT_FAILSAFE_PORT = 7701


def _failsafe_port(ctx: Ctx, fs: dict[str, Any], addr: str, has_tls: bool) -> tuple[int, str]:
    """(port, why there is none): on by default where it can work. Failsafe is on in a
    new cluster, and a group's active keeps its role through a coordinator outage only
    on a grant from every other member's listener, so a node with a certificate and an
    address gets one unless its file says `port: 0`. Without tls no lease is granted
    (the caller's node comes from its certificate), so there is none, and no error."""
    if "port" not in fs:
        if not has_tls:
            return 0, "no tls: failsafe leases are granted only to the node a certificate names"
        if not addr:
            return 0, "no address: the other members would not know where to ask"
        return DEFAULT_FAILSAFE_PORT, ""
    port = integer(ctx, "failsafe.port", fs["port"])
    if not 0 <= port <= 65535:
        ctx.fail(f"failsafe.port ({port}) must be 0 (no listener) to 65535")
    if port and not addr:
        ctx.fail("failsafe.port needs address (where the other members reach this node)")
    if port and not has_tls:
        ctx.fail("failsafe.port needs tls: a failsafe lease is granted only to the node the "
                 "caller's certificate names")
    return port, "" if port else "failsafe.port is 0 in the config"


def _loopback(endpoint: str) -> bool:
    host = endpoint.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _interface(ctx: Ctx, where: str, value: Any) -> str:
    if not isinstance(value, str) or not IFNAME_RE.fullmatch(value):
        ctx.fail(f"{where} ({value!r}) must be a network interface name (1-15 characters, "
                 "no spaces or slashes)")
    return value


def _parse_vip(ctx: Ctx, sec: Mapping[str, Any]) -> VipConfig:
    check_keys(ctx, "vip", sec, ("interface", "announce_count", "announce_interval",
                                 "refresh_interval", "lifetime", "manage", "kernel_lease"))
    d = VipConfig()
    manage = sec.get("manage", d.manage)
    if not isinstance(manage, bool):
        ctx.fail("vip.manage must be true or false")
    lifetime = integer(ctx, "vip.lifetime", sec.get("lifetime", d.lifetime))
    if lifetime != 0 and lifetime < 2:
        ctx.fail(f"vip.lifetime ({lifetime}) must be 0 (off) or at least 2 seconds")
    count = integer(ctx, "vip.announce_count", sec.get("announce_count", d.announce_count))
    if not 0 <= count <= 100:
        ctx.fail(f"vip.announce_count ({count}) must be between 0 and 100")
    return VipConfig(
        interface=_interface(ctx, "vip.interface", sec.get("interface", d.interface)),
        announce_count=count,
        announce_interval=duration(ctx, "vip.announce_interval",
                                   sec.get("announce_interval", d.announce_interval)),
        refresh_interval=duration(ctx, "vip.refresh_interval",
                                  sec.get("refresh_interval", d.refresh_interval)),
        lifetime=lifetime, manage=manage,
        kernel_lease=choice(ctx, "vip.kernel_lease", sec.get("kernel_lease", d.kernel_lease),
                            ("auto", "on", "off")))


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
        ctx.fail(f"{said('lease.keepalive_interval', interval, 'keepalive_interval' in sec)} "
                 f"and {said('lease.ttl', ttl, 'ttl' in sec)}, but the rule is "
                 "keepalive_interval <= ttl/3 (two lost keepalives must not end the lease); "
                 f"set lease.keepalive_interval to {fmt(ttl / 3)} or less, or lease.ttl to "
                 f"{fmt(3 * interval)} or more")
    usable = ttl * (1 - drift) - margin
    if usable <= 2 * interval:
        need = (2 * interval + margin) / (1 - drift)
        ctx.fail(f"{said('lease.ttl', ttl, 'ttl' in sec)}, which leaves {fmt(usable)}s of "
                 f"lease after drift and margin ({said('lease.drift', drift, 'drift' in sec)}; "
                 f"{said('lease.margin', margin, 'margin' in sec)}), but the rule is "
                 "ttl*(1-drift) - margin > 2*keepalive_interval "
                 f"({said('lease.keepalive_interval', interval, 'keepalive_interval' in sec)}); "
                 f"set lease.ttl above {fmt(need)}, or lower lease.keepalive_interval or "
                 "lease.margin")
    return LeaseConfig(ttl=ttl, keepalive_interval=interval, drift=drift, margin=margin)


def _parse_members(ctx: Ctx, raw: Any) -> tuple[MemberConfig, ...]:
    if not isinstance(raw, list) or not raw:
        ctx.fail("members must be a non-empty list (the VNFCs this VM hosts)")
    out: list[MemberConfig] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(raw):
        where = f"members[{i}]"
        sec = section(ctx, where, item)
        check_keys(ctx, where, sec, ("group", "member", "priority", "notify", "vip_interface",
                                     "checks", "notify_timeout"))
        for key in ("group", "member"):
            if key not in sec:
                ctx.fail(f"{where}.{key} is required")
        group = name(ctx, f"{where}.group", sec["group"])
        member = name(ctx, f"{where}.member", sec["member"])
        if (group, member) in seen:
            ctx.fail(f"{where}: {group}/{member} is listed twice")
        seen.add((group, member))
        prio = integer(ctx, f"{where}.priority", sec.get("priority", 100))
        if not names.PRIORITY_MIN <= prio <= names.PRIORITY_MAX:
            ctx.fail(f"{where}.priority ({prio}) must be in {names.PRIORITY_MIN}.."
                     f"{names.PRIORITY_MAX}")
        notify = sec.get("notify", ())
        if isinstance(notify, str):
            notify = (notify,)
        if not isinstance(notify, (list, tuple)) or not all(isinstance(a, str) and a
                                                            for a in notify):
            ctx.fail(f"{where}.notify must be a command (string or list of strings)")
        notify_timeout = duration(ctx, f"{where}.notify_timeout",
                                  sec.get("notify_timeout", 10.0))
        if not 0 < notify_timeout <= 600:
            ctx.fail(f"{where}.notify_timeout ({fmt(notify_timeout)}) must be > 0 and "
                     "<= 600 seconds")
        vif = sec.get("vip_interface")
        if vif is not None:
            vif = _interface(ctx, f"{where}.vip_interface", vif)
        checks: tuple[Any, ...] = ()
        if sec.get("checks") is not None:
            from vnfha.agents.health import parse_checks  # the check kinds live there

            checks = parse_checks(sec["checks"], f"{where}.checks", source=ctx.source)
        out.append(MemberConfig(group=group, member=member, priority=prio,
                                notify=tuple(notify), vip_interface=vif, checks=checks,
                                notify_timeout=notify_timeout))
    return tuple(out)
