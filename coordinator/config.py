"""Coordinator configuration: YAML in, frozen dataclasses out, every rule checked at load.

A coordinator that starts with a bad setting fails later and obscurely (leaders
flapping, agents declared lost between two keepalives, an open pickle port), so
everything that can be checked from the file alone is checked here, and every
error names the file and the setting (``coordinator.yaml: leases.ttl must be > 0``).
See docs/config.md for the meaning of each setting.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vnfha.coordinator import names
from vnfha.coordinator.config_recovery import RecoveryConfig, parse_recovery
from vnfha.coordinator.confparse import (
    NAME_RE,
    ConfigError,
    parse_address,
)
from vnfha.coordinator.confparse import (
    Ctx as _Ctx,
)
from vnfha.coordinator.confparse import (
    address as _address,
)
from vnfha.coordinator.confparse import (
    check_keys as _check_keys,
)
from vnfha.coordinator.confparse import (
    choice as _choice,
)
from vnfha.coordinator.confparse import (
    duration as _duration,
)
from vnfha.coordinator.confparse import (
    fmt as _fmt,
)
from vnfha.coordinator.confparse import (
    hint as _hint,
)
from vnfha.coordinator.confparse import (
    integer as _int,
)
from vnfha.coordinator.confparse import (
    le as _le,
)
from vnfha.coordinator.confparse import (
    lt as _lt,
)
from vnfha.coordinator.confparse import (
    name as _name,
)
from vnfha.coordinator.confparse import (
    norm_address as _norm_address,
)
from vnfha.coordinator.confparse import (
    number as _number,
)
from vnfha.coordinator.confparse import (
    path_setting as _path,
)
from vnfha.coordinator.confparse import (
    read_yaml as _read_yaml,
)
from vnfha.coordinator.confparse import (
    said as _said,
)
from vnfha.coordinator.confparse import (
    section as _section,
)
from vnfha.coordinator.confparse import (
    tname as _tname,
)
from vnfha.coordinator.metrics_config import MetricsConfig, is_loopback, parse_metrics
from vnfha.coordinator.security.tls import TlsFiles, parse_tls
from vnfha.coordinator.store import guarantees_of
from vnfha.coordinator.store.etcd_config import (
    EtcdSettings,
    etcd_section_only_with_etcd,
    parse_etcd,
)

__all__ = [
    "BACKENDS",
    "GROUP_MODES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "NAME_RE",
    "ClusterConfig",
    "ConfigError",
    "CoordinatorConfig",
    "CoordinatorMember",
    "FastPathConfig",
    "GroupConfig",
    "LeasesConfig",
    "LoggingConfig",
    "PolicyConfig",
    "RaftConfig",
    "StateConfig",
    "StoreConfig",
    "group_specs",
    "load_config",
    "load_groups_file",
    "parse_address",
    "parse_config",
    "parse_groups",
]

BACKENDS = ("raft", "memory", "etcd")
GROUP_MODES = ("active-standby", "active-active")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")



# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class CoordinatorMember:
    """One coordinator of the cluster."""

    id: str
    #: host:port of its gRPC endpoint (agent, admin, peer and health services)
    api: str
    #: host:port of its Raft port; None only with the memory backend
    raft: str | None


@dataclass(frozen=True)
class ClusterConfig:
    members: tuple[CoordinatorMember, ...]
    #: resolved path of the secret file, if one was configured
    secret_file: Path | None = None
    #: the shared secret itself (read from secret_file, or given inline); kept out of repr
    secret: str | None = field(default=None, repr=False)
    #: during a secret rotation: the secret before it, still accepted from peers, never sent
    previous_secret_file: Path | None = None
    previous_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StoreConfig:
    backend: str = "raft"
    #: absolute; the raft journal lives in data_dir/<node_id>
    data_dir: Path = Path("/var/lib/vnfha")
    #: backend etcd only: endpoints, prefix, TLS, auth, session TTL
    etcd: EtcdSettings | None = None


@dataclass(frozen=True)
class RaftConfig:
    election_timeout_min: float = 0.3
    election_timeout_max: float = 0.6
    heartbeat_interval: float = 0.05
    compaction_min_entries: int = 10000
    #: a disk error other than ENOSPC lasting this long makes the coordinator exit
    disk_fatal_after: float = 10.0


@dataclass(frozen=True)
class LeasesConfig:
    ttl: float = 0.25
    keepalive_interval: float = 0.06
    stabilization: float = 10.0


@dataclass(frozen=True)
class PolicyConfig:
    decide_interval: float = 0.05


@dataclass(frozen=True)
class StateConfig:
    """Limits of the per-group checkpoint and queue (coordinator/state_data.py)."""

    checkpoint_max_bytes: int = 256 * 1024
    queue_max_message_bytes: int = 64 * 1024
    queue_retain_messages: int = 1000
    queue_retain_bytes: int = 1024 * 1024


#: A command must fit one Raft entry (1 MiB) after base64 (4/3) and JSON framing.
STATE_MAX_ITEM_BYTES = 512 * 1024
#: Retained queue bytes live in every snapshot; keep snapshots small.
STATE_MAX_RETAIN_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class GroupConfig:
    name: str
    mode: str = "active-standby"
    #: interface address (address/prefix) as written in the file, or None
    vip: str | None = None

    def as_spec(self) -> dict[str, str]:
        """The shape `commands.apply_groups` takes (vip "" when unset)."""
        return {"name": self.name, "mode": self.mode, "vip": self.vip or ""}


@dataclass(frozen=True)
class FastPathConfig:
    """The keepalive fast path (coordinator/fastpath.py, docs/config.md `fastpath`)."""

    enabled: bool = True
    #: UDP port on the API's host; None: the API's port number (UDP and TCP differ)
    port: int | None = None


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "text"


@dataclass(frozen=True)
class RealtimeConfig:
    """Real-time scheduling of the whole coordinator process (server.run): its
    keepalive intake and Raft threads must run on time on a loaded host, and with the
    GIL every thread may hold what they wait for, so all of them get it."""

    mode: str = "auto"  # auto: what the host permits | on: refuse to start without | off
    #: SCHED_FIFO priority, 1..99; below the agent's and guardian's 10, so that on a
    #: host shared with them a busy coordinator (start-up replay, a snapshot) cannot
    #: hold off the lease path of an agent: equal FIFO priorities never preempt
    priority: int = 5


@dataclass(frozen=True)
class CoordinatorConfig:
    node_id: str
    cluster: ClusterConfig
    store: StoreConfig = field(default_factory=StoreConfig)
    raft: RaftConfig = field(default_factory=RaftConfig)
    leases: LeasesConfig = field(default_factory=LeasesConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    groups: tuple[GroupConfig, ...] = ()
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    #: also serve every gRPC service on this unix socket (local admin without the
    #: network; reachable from outside the coordinator's network namespace)
    admin_socket: Path | None = None
    #: where the config came from (file path or a label), for messages
    source: str = "<config>"
    state: StateConfig = field(default_factory=StateConfig)
    #: the recovery hook for active-active members (coordinator/recovery.py)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    #: mTLS of the gRPC API, server and peer client (docs/security.md); None: plaintext
    tls: TlsFiles | None = None
    #: explicitly allow a multi-coordinator cluster without tls (logged loudly)
    insecure: bool = False
    #: the /metrics, /livez, /readyz listener (docs/metrics.md); off by default
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    #: SCHED_FIFO, mlockall, gc.freeze (docs/config.md `realtime`)
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    #: keepalives over authenticated UDP datagrams, keys issued over mTLS gRPC
    fastpath: FastPathConfig = field(default_factory=FastPathConfig)

    @property
    def self_member(self) -> CoordinatorMember:
        """This coordinator's own entry (guaranteed to exist by validation)."""
        for m in self.cluster.members:
            if m.id == self.node_id:
                return m
        raise AssertionError(f"{self.node_id!r} not in members")  # unreachable after parse

    @property
    def peers(self) -> tuple[CoordinatorMember, ...]:
        """The other coordinators, in file order."""
        return tuple(m for m in self.cluster.members if m.id != self.node_id)

    @property
    def quorum(self) -> int:
        """Majority size: how many coordinators must agree for a write to commit."""
        return len(self.cluster.members) // 2 + 1

    @property
    def raft_dir(self) -> Path:
        """This node's raft journal folder (data_dir/<node_id>)."""
        return self.store.data_dir / self.node_id

    def groups_as_specs(self) -> list[dict[str, str]]:
        """Declared groups in the shape of the `apply_groups` command."""
        return group_specs(self.groups)


def group_specs(groups: Sequence[GroupConfig]) -> list[dict[str, str]]:
    """Groups in the shape of the `apply_groups` command."""
    return [g.as_spec() for g in groups]


# --------------------------------------------------------------------------- entry points


def load_config(path: str | Path) -> CoordinatorConfig:
    """Read and validate a coordinator config file; relative paths resolve against its folder."""
    p = Path(path)
    data = _read_yaml(p)
    return parse_config(data, source=str(p), base_dir=p.resolve().parent)


def load_groups_file(path: str | Path) -> tuple[GroupConfig, ...]:
    """Read a `vnfha group apply -f` file: a mapping with one key, `groups:` (a list)."""
    p = Path(path)
    data = _read_yaml(p)
    ctx = _Ctx(str(p))
    if data is None:
        raise ConfigError(f"{p}: file is empty; expected a top-level 'groups:' list")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: top level must be a mapping with a 'groups:' list, "
                          f"got {_tname(data)}")
    _check_keys(ctx, "", data, ("groups",))
    if "groups" not in data:
        raise ConfigError(f"{p}: groups is required")
    return parse_groups(data["groups"], source=str(p))


def parse_groups(value: Any, source: str = "<groups>") -> tuple[GroupConfig, ...]:
    """Validate a list of group mappings (the `groups:` setting)."""
    return _parse_groups(_Ctx(source), "groups", value)


def parse_config(data: Any, source: str = "<config>",
                 base_dir: str | Path | None = None) -> CoordinatorConfig:
    """Validate an already-parsed mapping; `base_dir` anchors relative paths (default: cwd)."""
    ctx = _Ctx(source)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if data is None:
        ctx.fail("node_id is required (the file is empty)")
    if not isinstance(data, Mapping):
        ctx.fail(f"top level must be a mapping, got {_tname(data)}")
    _check_keys(ctx, "", data, ("node_id", "cluster", "store", "raft", "leases", "policy",
                                "groups", "logging", "admin_socket", "state",
                                "recovery", "tls", "insecure", "metrics", "realtime",
                                "fastpath"))

    if "node_id" not in data:
        ctx.fail("node_id is required")
    node_id = _name(ctx, "node_id", data["node_id"])

    store = _parse_store(ctx, _section(ctx, "store", data.get("store")), base)
    cluster = _parse_cluster(ctx, _section(ctx, "cluster", data.get("cluster")), base,
                             store.backend)
    members = cluster.members
    if node_id not in {m.id for m in members}:
        known = ", ".join(m.id for m in members)
        ctx.fail(f"node_id ({node_id}) must be one of cluster.members[].id ({known})"
                 + _hint(node_id, [m.id for m in members]))
    # What the backend declares (store/base.py Guarantees), not which backend it is.
    if len(members) > 1 and not guarantees_of(store.backend).shared:
        ctx.fail(f"store.backend {store.backend} keeps state in one process and cannot be "
                 f"shared: it needs exactly one member, cluster.members has {len(members)}; "
                 f"use backend raft")

    raft = _parse_raft(ctx, _section(ctx, "raft", data.get("raft")))
    leases = _parse_leases(ctx, _section(ctx, "leases", data.get("leases")))
    policy = _parse_policy(ctx, _section(ctx, "policy", data.get("policy")))
    written = {f"{name}.{key}" for name in ("raft", "leases", "policy")
               if isinstance(data.get(name), Mapping) for key in data[name]}
    _check_timing(ctx, raft, leases, policy, written)
    groups = _parse_groups(ctx, "groups", data.get("groups"))
    logging = _parse_logging(ctx, _section(ctx, "logging", data.get("logging")))
    admin_socket = None
    if data.get("admin_socket") is not None:
        admin_socket = _path(ctx, "admin_socket", data["admin_socket"], base)
        if len(str(admin_socket)) > 100:
            ctx.fail(f"admin_socket ({admin_socket}) is too long for a unix socket path")
    state = _parse_state(ctx, _section(ctx, "state", data.get("state")))
    recovery = parse_recovery(ctx, _section(ctx, "recovery", data.get("recovery")))
    metrics = parse_metrics(ctx, data.get("metrics"), base)
    realtime = _parse_realtime(ctx, _section(ctx, "realtime", data.get("realtime")))
    tls = parse_tls(ctx, "tls", data.get("tls"), base)
    insecure = data.get("insecure", False)
    if not isinstance(insecure, bool):
        ctx.fail(f"insecure must be true or false, got {_tname(insecure)}")
    if len(members) > 1 and tls is None and not insecure:
        ctx.fail(f"tls (ca_file, cert_file, key_file) is required with more than one member "
                 f"(cluster.members has {len(members)}): every caller of the API must prove "
                 f"who it is; make lab certificates with 'vnfha certs' (docs/security.md), "
                 f"or set insecure: true to run a lab without TLS")
    api = next(m.api for m in members if m.id == node_id)
    if tls is None and not insecure and not is_loopback(parse_address(api)[0]):
        # Without TLS every caller is trusted with everything: only loopback keeps
        # that to this machine (a single coordinator "needs no secret" is a lab rule).
        ctx.fail(f"tls (ca_file, cert_file, key_file) is required when the api address "
                 f"({api}) is not loopback: without it anyone who reaches that address "
                 f"may call everything, switchovers included; make certificates with "
                 f"'vnfha certs' (docs/security.md), listen on 127.0.0.1, or set "
                 f"insecure: true to accept that")
    fastpath = _parse_fastpath(ctx, _section(ctx, "fastpath", data.get("fastpath")))
    return CoordinatorConfig(node_id=node_id, cluster=cluster, store=store, raft=raft,
                             leases=leases, policy=policy, groups=groups, logging=logging,
                             admin_socket=admin_socket, source=source, state=state,
                             recovery=recovery, tls=tls, insecure=insecure,
                             metrics=metrics, realtime=realtime, fastpath=fastpath)


# --------------------------------------------------------------------------- sections


def _parse_store(ctx: _Ctx, sec: Mapping[str, Any], base: Path) -> StoreConfig:
    _check_keys(ctx, "store", sec, ("backend", "data_dir", "etcd"))
    backend = _choice(ctx, "store.backend", sec.get("backend", "raft"), BACKENDS)
    data_dir = _path(ctx, "store.data_dir", sec.get("data_dir", "/var/lib/vnfha"), base)
    etcd_section_only_with_etcd(ctx, sec, backend)
    etcd = parse_etcd(ctx, sec.get("etcd"), base) if backend == "etcd" else None
    return StoreConfig(backend=backend, data_dir=data_dir, etcd=etcd)


def _parse_cluster(ctx: _Ctx, sec: Mapping[str, Any], base: Path,
                   backend: str) -> ClusterConfig:
    _check_keys(ctx, "cluster", sec, ("members", "secret_file", "secret",
                                      "previous_secret_file"))
    raw = sec.get("members")
    if raw is None:
        ctx.fail("cluster.members is required (list every coordinator, this one included)")
    if not isinstance(raw, list):
        ctx.fail(f"cluster.members must be a list, got {_tname(raw)}")
    if not raw:
        ctx.fail("cluster.members must list at least one coordinator")

    members: list[CoordinatorMember] = []
    ids: dict[str, str] = {}
    addresses: dict[str, str] = {}
    for i, item in enumerate(raw):
        where = f"cluster.members[{i}]"
        if not isinstance(item, Mapping):
            ctx.fail(f"{where} must be a mapping with id, api and raft, got {_tname(item)}")
        _check_keys(ctx, where, item, ("id", "api", "raft"))
        for key in ("id", "api") + (("raft",) if backend == "raft" else ()):
            if item.get(key) is None:
                ctx.fail(f"{where}.{key} is required")
        mid = _name(ctx, f"{where}.id", item["id"])
        if mid in ids:
            ctx.fail(f"{where}.id ({mid}) is a duplicate of {ids[mid]}.id")
        ids[mid] = where
        api = _address(ctx, f"{where}.api", item["api"])
        if backend == "etcd" and item.get("raft") is not None:
            ctx.fail(f"{where}.raft is not used with store.backend etcd (the state lives "
                     f"in etcd); remove it")
        raft = _address(ctx, f"{where}.raft", item["raft"]) if item.get("raft") is not None \
            else None
        for key, addr in (("api", api), ("raft", raft)):
            if addr is None:
                continue
            norm = _norm_address(addr)
            if norm in addresses:
                ctx.fail(f"{where}.{key} ({addr}) is already used by {addresses[norm]}: "
                         f"every api and raft address must be distinct")
            addresses[norm] = f"{where}.{key}"
        members.append(CoordinatorMember(id=mid, api=api, raft=raft))

    secret_file: Path | None = None
    secret: str | None = None
    has_file = sec.get("secret_file") is not None
    has_inline = sec.get("secret") is not None
    if has_file and has_inline:
        ctx.fail("cluster.secret and cluster.secret_file are mutually exclusive; "
                 "keep secret_file")
    if has_file:
        secret_file, secret = _read_secret_file(ctx, "cluster.secret_file",
                                                sec["secret_file"], base)
    elif has_inline:
        value = sec["secret"]
        if not isinstance(value, str):
            ctx.fail(f"cluster.secret must be a string, got {_tname(value)}")
        secret = value.strip()
        if not secret:
            ctx.fail("cluster.secret is empty")
        _check_secret_length(ctx, "cluster.secret", secret)
    if backend == "raft" and len(members) > 1 and secret is None:
        ctx.fail(f"cluster.secret_file is required with more than one member "
                 f"(cluster.members has {len(members)}): every Raft frame is authenticated "
                 f"with it; create it with: head -c 32 /dev/urandom | base64 > FILE")
    previous_file: Path | None = None
    previous: str | None = None
    if sec.get("previous_secret_file") is not None:
        if secret is None:
            ctx.fail("cluster.previous_secret_file needs cluster.secret_file (the new secret)")
        previous_file, previous = _read_secret_file(ctx, "cluster.previous_secret_file",
                                                    sec["previous_secret_file"], base)
    return ClusterConfig(members=tuple(members), secret_file=secret_file, secret=secret,
                         previous_secret_file=previous_file, previous_secret=previous)


#: the cluster secret rule (same as RaftSettings): at least this many bytes of UTF-8 text
MIN_SECRET_BYTES = 32


def _check_secret_length(ctx: _Ctx, key: str, secret: str) -> None:
    size = len(secret.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        ctx.fail(f"{key} holds a {size}-byte secret, at least {MIN_SECRET_BYTES} bytes are "
                 f"needed; make one with: head -c 32 /dev/urandom | base64")


def _read_secret_file(ctx: _Ctx, key: str, value: Any, base: Path) -> tuple[Path, str]:
    """Read, strip and check one secret file; never puts the secret in an error."""
    path = _path(ctx, key, value, base)
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        ctx.fail(f"{key} ({path}) does not exist; create it with: "
                 f"head -c 32 /dev/urandom | base64 > {path}")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail(f"{key} ({path}) cannot be read: {exc}")
    if not secret:
        ctx.fail(f"{key} ({path}) is empty")
    _check_secret_length(ctx, f"{key} ({path})", secret)
    return path, secret


def _parse_raft(ctx: _Ctx, sec: Mapping[str, Any]) -> RaftConfig:
    d = RaftConfig()
    _check_keys(ctx, "raft", sec, ("election_timeout_min", "election_timeout_max",
                                   "heartbeat_interval", "compaction_min_entries",
                                   "disk_fatal_after"))
    entries = _int(ctx, "raft.compaction_min_entries",
                   sec.get("compaction_min_entries", d.compaction_min_entries))
    if entries < 100:
        ctx.fail(f"raft.compaction_min_entries ({entries}) must be >= 100")
    return RaftConfig(
        election_timeout_min=_duration(ctx, "raft.election_timeout_min",
                                       sec.get("election_timeout_min", d.election_timeout_min)),
        election_timeout_max=_duration(ctx, "raft.election_timeout_max",
                                       sec.get("election_timeout_max", d.election_timeout_max)),
        heartbeat_interval=_duration(ctx, "raft.heartbeat_interval",
                                     sec.get("heartbeat_interval", d.heartbeat_interval)),
        compaction_min_entries=entries,
        disk_fatal_after=_duration(ctx, "raft.disk_fatal_after",
                                   sec.get("disk_fatal_after", d.disk_fatal_after)),
    )


def _parse_state(ctx: _Ctx, sec: Mapping[str, Any]) -> StateConfig:
    d = StateConfig()
    keys = ("checkpoint_max_bytes", "queue_max_message_bytes", "queue_retain_messages",
            "queue_retain_bytes")
    _check_keys(ctx, "state", sec, keys)
    v = {k: _int(ctx, f"state.{k}", sec.get(k, getattr(d, k))) for k in keys}
    for k in keys:
        if v[k] < 1:
            ctx.fail(f"state.{k} ({v[k]}) must be >= 1")
    for k in ("checkpoint_max_bytes", "queue_max_message_bytes"):
        if v[k] > STATE_MAX_ITEM_BYTES:
            ctx.fail(f"state.{k} ({v[k]}) must be <= {STATE_MAX_ITEM_BYTES}: one write must "
                     "fit one Raft entry")
    if v["queue_retain_bytes"] < v["queue_max_message_bytes"]:
        ctx.fail(f"state.queue_retain_bytes ({v['queue_retain_bytes']}) must be >= "
                 f"state.queue_max_message_bytes ({v['queue_max_message_bytes']})")
    if v["queue_retain_bytes"] > STATE_MAX_RETAIN_BYTES:
        ctx.fail(f"state.queue_retain_bytes ({v['queue_retain_bytes']}) must be <= "
                 f"{STATE_MAX_RETAIN_BYTES}: every snapshot carries the retained messages")
    return StateConfig(**v)


def _parse_leases(ctx: _Ctx, sec: Mapping[str, Any]) -> LeasesConfig:
    d = LeasesConfig()
    _check_keys(ctx, "leases", sec, ("ttl", "keepalive_interval", "stabilization"))
    stab = _number(ctx, "leases.stabilization", sec.get("stabilization", d.stabilization))
    if stab < 0:
        ctx.fail(f"leases.stabilization ({_fmt(stab)}) must be >= 0")
    return LeasesConfig(
        ttl=_duration(ctx, "leases.ttl", sec.get("ttl", d.ttl)),
        keepalive_interval=_duration(ctx, "leases.keepalive_interval",
                                     sec.get("keepalive_interval", d.keepalive_interval)),
        stabilization=stab,
    )


def _parse_policy(ctx: _Ctx, sec: Mapping[str, Any]) -> PolicyConfig:
    _check_keys(ctx, "policy", sec, ("decide_interval",))
    return PolicyConfig(decide_interval=_duration(
        ctx, "policy.decide_interval", sec.get("decide_interval", PolicyConfig.decide_interval)))


def _check_timing(ctx: _Ctx, raft: RaftConfig, leases: LeasesConfig,
                  policy: PolicyConfig, written: Collection[str] = ()) -> None:
    """Cross-setting rules; each gets its own message so the fix is obvious. `written`
    holds the settings the file gave (e.g. 'leases.ttl'): a message says which values
    are defaults the user never wrote, states the rule and suggests a fix."""

    def said(setting: str, value: float) -> str:
        return _said(setting, value, setting in written)

    if not _le(leases.keepalive_interval, leases.ttl / 3):
        ctx.fail(f"{said('leases.keepalive_interval', leases.keepalive_interval)} and "
                 f"{said('leases.ttl', leases.ttl)}, but the rule is keepalive_interval <= "
                 "ttl/3 (a node must get three keepalives into one ttl, or one late packet "
                 f"loses it); set leases.keepalive_interval to {_fmt(leases.ttl / 3)} or "
                 f"less, or leases.ttl to {_fmt(3 * leases.keepalive_interval)} or more")
    if not _lt(raft.election_timeout_min, raft.election_timeout_max):
        ctx.fail(f"{said('raft.election_timeout_min', raft.election_timeout_min)} and "
                 f"{said('raft.election_timeout_max', raft.election_timeout_max)}, but the "
                 "rule is election_timeout_min < election_timeout_max; raise "
                 "raft.election_timeout_max or lower raft.election_timeout_min")
    if not _lt(raft.heartbeat_interval * 3, raft.election_timeout_min):
        ctx.fail(f"{said('raft.heartbeat_interval', raft.heartbeat_interval)} and "
                 f"{said('raft.election_timeout_min', raft.election_timeout_min)}, but the "
                 "rule is heartbeat_interval*3 < election_timeout_min (followers would start "
                 "elections between two heartbeats); set raft.heartbeat_interval below "
                 f"{_fmt(raft.election_timeout_min / 3)}, or raft.election_timeout_min above "
                 f"{_fmt(raft.heartbeat_interval * 3)}")
    if not _le(policy.decide_interval, leases.ttl / 3):
        ctx.fail(f"{said('policy.decide_interval', policy.decide_interval)} and "
                 f"{said('leases.ttl', leases.ttl)}, but the rule is decide_interval <= "
                 "ttl/3 (a lost node would be noticed too late); set policy.decide_interval "
                 f"to {_fmt(leases.ttl / 3)} or less, or leases.ttl to "
                 f"{_fmt(3 * policy.decide_interval)} or more")


def _parse_groups(ctx: _Ctx, where: str, raw: Any) -> tuple[GroupConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.fail(f"{where} must be a list, got {_tname(raw)}")
    groups: list[GroupConfig] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            ctx.fail(f"{at} must be a mapping with name, mode and vip, got {_tname(item)}")
        _check_keys(ctx, at, item, ("name", "mode", "vip"))
        if item.get("name") is None:
            ctx.fail(f"{at}.name is required")
        name = _name(ctx, f"{at}.name", item["name"])
        if name in seen:
            ctx.fail(f"{at}.name ({name}) is a duplicate of {seen[name]}.name")
        seen[name] = at
        mode = _choice(ctx, f"{at}.mode", item.get("mode", "active-standby"), GROUP_MODES)
        vip = item.get("vip")
        if vip is not None:
            if not isinstance(vip, str):
                ctx.fail(f"{at}.vip must be a string like 198.18.0.100/24, got {_tname(vip)}")
            try:
                vip = names.check_vip(vip)  # the same rule the API and state machine apply
            except names.InvalidValue:
                ctx.fail(f"{at}.vip ({names.quoted(vip)}) is not an IPv4/IPv6 interface "
                         f"address with a prefix length (e.g. 198.18.0.100/24)")
        groups.append(GroupConfig(name=name, mode=mode, vip=vip or None))
    return tuple(groups)


def _parse_realtime(ctx: _Ctx, sec: Mapping[str, Any]) -> RealtimeConfig:
    _check_keys(ctx, "realtime", sec, ("mode", "priority"))
    mode = _choice(ctx, "realtime.mode", sec.get("mode", "auto"), ("auto", "on", "off"))
    priority = sec.get("priority", RealtimeConfig.priority)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 99:
        ctx.fail(f"realtime.priority ({priority!r}) must be an integer between 1 and 99 "
                 f"(SCHED_FIFO)")
    return RealtimeConfig(mode=mode, priority=priority)

def _parse_fastpath(ctx: _Ctx, sec: Mapping[str, Any]) -> FastPathConfig:
    _check_keys(ctx, "fastpath", sec, ("enabled", "port"))
    enabled = sec.get("enabled", True)
    if not isinstance(enabled, bool):
        ctx.fail(f"fastpath.enabled must be true or false, got {_tname(enabled)}")
    port = sec.get("port")
    if port is not None:
        port = _int(ctx, "fastpath.port", port)
        if not 0 <= port <= 65535:
            ctx.fail(f"fastpath.port ({port}) must be between 0 and 65535 (0: any free port, "
                     "announced to agents in OpenFastPath)")
    return FastPathConfig(enabled=enabled, port=port)


def _parse_logging(ctx: _Ctx, sec: Mapping[str, Any]) -> LoggingConfig:
    _check_keys(ctx, "logging", sec, ("level", "format"))
    level = sec.get("level", "info")
    if isinstance(level, str):
        level = level.lower()  # INFO is what people type
    return LoggingConfig(level=_choice(ctx, "logging.level", level, LOG_LEVELS),
                         format=_choice(ctx, "logging.format", sec.get("format", "text"),
                                        LOG_FORMATS))


