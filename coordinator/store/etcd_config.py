"""The `store.etcd` config section: where etcd is, how to trust it and log in, session TTL.

Checked strictly at load, like the rest of the config (confparse.py): every
error names the file and the setting, missing files are reported with their
path, and the password is read from a file so it stays out of the config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vnfha.coordinator.confparse import (
    Ctx,
    address,
    check_keys,
    integer,
    norm_address,
    path_setting,
    section,
    tname,
)

DEFAULT_PREFIX = "/vnfha"
DEFAULT_SESSION_TTL = 3
#: etcd refuses leases shorter than its own minimum (2 s with default timing)
MIN_SESSION_TTL = 2
MAX_SESSION_TTL = 60
_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")


@dataclass(frozen=True)
class EtcdSettings:
    """Where etcd is and how to talk to it (config: store.etcd)."""

    endpoints: tuple[str, ...]
    prefix: str = DEFAULT_PREFIX
    #: seconds; the coordinator's session lease (leadership, reachability)
    session_ttl: int = DEFAULT_SESSION_TTL
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    user: str | None = None
    password_file: Path | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        return self.ca_file is not None


def parse_etcd(ctx: Ctx, raw: Any, base: Path) -> EtcdSettings:
    sec = section(ctx, "store.etcd", raw)
    check_keys(ctx, "store.etcd", sec, ("endpoints", "prefix", "session_ttl", "tls", "auth"))
    eps = sec.get("endpoints")
    if eps is None:
        ctx.fail("store.etcd.endpoints is required with store.backend etcd "
                 "(a list of host:port, e.g. [10.0.0.1:2379, 10.0.0.2:2379])")
    if isinstance(eps, str):
        eps = [eps]
    if not isinstance(eps, list) or not eps:
        ctx.fail(f"store.etcd.endpoints must be a non-empty list of host:port, got {tname(eps)}")
    endpoints: list[str] = []
    seen: dict[str, int] = {}
    for i, ep in enumerate(eps):
        where = f"store.etcd.endpoints[{i}]"
        if isinstance(ep, str) and "://" in ep:
            ctx.fail(f"{where} ({ep!r}) must be host:port without a scheme; TLS is "
                     f"turned on by store.etcd.tls")
        ep = address(ctx, where, ep)
        norm = norm_address(ep)
        if norm in seen:
            ctx.fail(f"{where} ({ep}) is a duplicate of store.etcd.endpoints[{seen[norm]}]")
        seen[norm] = i
        endpoints.append(ep)

    prefix = sec.get("prefix", DEFAULT_PREFIX)
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        ctx.fail(f"store.etcd.prefix ({prefix!r}) must look like /vnfha or /vnfha/site-a: "
                 f"starting with '/', no trailing '/', segments of letters, digits, "
                 f"'_', '.' or '-'")

    ttl = integer(ctx, "store.etcd.session_ttl", sec.get("session_ttl", DEFAULT_SESSION_TTL))
    if not MIN_SESSION_TTL <= ttl <= MAX_SESSION_TTL:
        ctx.fail(f"store.etcd.session_ttl ({ttl}) must be {MIN_SESSION_TTL}..{MAX_SESSION_TTL} "
                 f"seconds: etcd grants no shorter lease, and a longer one delays a new leader")

    ca = cert = key = None
    if sec.get("tls") is not None:
        tls = section(ctx, "store.etcd.tls", sec["tls"])
        check_keys(ctx, "store.etcd.tls", tls, ("ca_file", "cert_file", "key_file"))
        if tls.get("ca_file") is None:
            ctx.fail("store.etcd.tls.ca_file is required with tls (the CA that signed "
                     "etcd's server certificate)")
        ca = _readable(ctx, "store.etcd.tls.ca_file", tls["ca_file"], base)
        has_cert, has_key = tls.get("cert_file") is not None, tls.get("key_file") is not None
        if has_cert != has_key:
            ctx.fail("store.etcd.tls.cert_file and store.etcd.tls.key_file go together "
                     "(client certificate authentication needs both)")
        if has_cert:
            cert = _readable(ctx, "store.etcd.tls.cert_file", tls["cert_file"], base)
            key = _readable(ctx, "store.etcd.tls.key_file", tls["key_file"], base)

    user = password_file = password = None
    if sec.get("auth") is not None:
        auth = section(ctx, "store.etcd.auth", sec["auth"])
        check_keys(ctx, "store.etcd.auth", auth, ("user", "password_file"))
        user = auth.get("user")
        if not isinstance(user, str) or not user.strip():
            ctx.fail(f"store.etcd.auth.user must be a non-empty string, got {tname(user)}")
        user = user.strip()
        if auth.get("password_file") is None:
            ctx.fail("store.etcd.auth.password_file is required with auth (the password "
                     "is kept in a file, not in this config)")
        password_file = _readable(ctx, "store.etcd.auth.password_file",
                                  auth["password_file"], base)
        password = password_file.read_text(encoding="utf-8").strip()
        if not password:
            ctx.fail(f"store.etcd.auth.password_file ({password_file}) is empty")

    return EtcdSettings(endpoints=tuple(endpoints), prefix=prefix, session_ttl=ttl,
                        ca_file=ca, cert_file=cert, key_file=key, user=user,
                        password_file=password_file, password=password)


def _readable(ctx: Ctx, where: str, value: Any, base: Path) -> Path:
    p = path_setting(ctx, where, value, base)
    try:
        with p.open("rb") as f:
            f.read(1)
    except FileNotFoundError:
        ctx.fail(f"{where} ({p}) does not exist")
    except OSError as e:
        ctx.fail(f"{where} ({p}) cannot be read: {e}")
    return p


def etcd_section_only_with_etcd(ctx: Ctx, sec: Mapping[str, Any], backend: str) -> None:
    if backend != "etcd" and sec.get("etcd") is not None:
        ctx.fail(f"store.etcd is only used with store.backend etcd (backend is {backend})")
