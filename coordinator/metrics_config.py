"""The `metrics:` config section, shared by coordinator and agent configs (docs/metrics.md).

Off unless `listen` is set. The listener serves /metrics, /livez and /readyz; with
`tls` it speaks HTTPS and, when `tls.ca_file` is given, asks every client for a
certificate signed by that CA (as Patroni's REST API does). Metrics name groups,
members, nodes and VIPs, and /readyz tells a stranger whether the cluster is
writable, so a listener reachable from the network without TLS is refused here:
an unencrypted, unauthenticated listener must stay on loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vnfha.coordinator.confparse import (
    Ctx,
    address,
    check_keys,
    parse_address,
    path_setting,
    section,
)

#: The listen address the docs suggest for a coordinator (an agent: 127.0.0.1:9402).
DEFAULT_COORDINATOR_LISTEN = "127.0.0.1:9401"
DEFAULT_AGENT_LISTEN = "127.0.0.1:9402"


@dataclass(frozen=True)
class MetricsTls:
    cert_file: Path
    key_file: Path
    #: when set, clients must present a certificate signed by this CA
    ca_file: Path | None = None


@dataclass(frozen=True)
class MetricsConfig:
    #: host:port of the HTTP listener; None: no listener (the default)
    listen: str | None = None
    tls: MetricsTls | None = None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; a name that is not an address is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_metrics(ctx: Ctx, value: Any, base: Path) -> MetricsConfig:
    """Validate `metrics:`; relative TLS paths resolve against `base` (the config's folder)."""
    sec: Mapping[str, Any] = section(ctx, "metrics", value)
    check_keys(ctx, "metrics", sec, ("listen", "tls"))
    listen = sec.get("listen")
    if listen is None:
        if sec.get("tls") is not None:
            ctx.fail("metrics.tls is set but metrics.listen is not: set metrics.listen "
                     f"(e.g. {DEFAULT_COORDINATOR_LISTEN}) to serve metrics")
        return MetricsConfig()
    listen = address(ctx, "metrics.listen", listen)
    tls = None
    raw_tls = sec.get("tls")
    if raw_tls is not None:
        t = section(ctx, "metrics.tls", raw_tls)
        check_keys(ctx, "metrics.tls", t, ("cert_file", "key_file", "ca_file"))
        for key in ("cert_file", "key_file"):
            if key not in t:
                ctx.fail(f"metrics.tls.{key} is required when metrics.tls is set")
        paths = {k: path_setting(ctx, f"metrics.tls.{k}", t[k], base)
                 for k in ("cert_file", "key_file", "ca_file") if t.get(k) is not None}
        for k, p in paths.items():
            if not p.is_file():
                ctx.fail(f"metrics.tls.{k} ({p}) does not exist or is not a file")
        tls = MetricsTls(cert_file=paths["cert_file"], key_file=paths["key_file"],
                         ca_file=paths.get("ca_file"))
    host, _port = parse_address(listen)
    if tls is None and not is_loopback(host):
        ctx.fail(f"metrics.listen ({listen}) is not a loopback address: set metrics.tls "
                 "(cert_file, key_file and ca_file for client certificates), or listen on "
                 "127.0.0.1")
    return MetricsConfig(listen=listen, tls=tls)
