"""The coordinator config's `recovery:` section (docs/config.md, docs/active-active.md)."""

from __future__ import annotations

import shlex
import urllib.parse
from collections.abc import Mapping
from typing import Any

from vnfha.coordinator.confparse import Ctx, check_keys, duration, fmt, integer, tname
from vnfha.coordinator.recovery import RecoveryConfig

__all__ = ["RecoveryConfig", "parse_recovery"]


def parse_recovery(ctx: Ctx, sec: Mapping[str, Any]) -> RecoveryConfig:
    d = RecoveryConfig()
    check_keys(ctx, "recovery", sec, ("exec", "webhook", "timeout", "max_attempts", "backoff",
                                      "backoff_max", "without_lb"))
    raw = sec.get("exec", ())
    if isinstance(raw, str):
        raw = shlex.split(raw)
    if not isinstance(raw, (list, tuple)) or not all(isinstance(a, str) and a for a in raw):
        ctx.fail(f"recovery.exec must be a command (a string, or a list of non-empty strings), "
                 f"got {tname(raw)}")
    webhook = sec.get("webhook", "")
    if not isinstance(webhook, str):
        ctx.fail(f"recovery.webhook must be a URL string, got {tname(webhook)}")
    if webhook:
        url = urllib.parse.urlsplit(webhook)
        if url.scheme != "http" or not url.hostname:
            ctx.fail(f"recovery.webhook ({webhook!r}) must be an http://host[:port]/path URL "
                     "(plain HTTP, reached without proxies)")
        try:
            url.port  # noqa: B018 - raises on a bad port
        except ValueError:
            ctx.fail(f"recovery.webhook ({webhook!r}) has an invalid port")
    attempts = integer(ctx, "recovery.max_attempts", sec.get("max_attempts", d.max_attempts))
    if attempts < 1:
        ctx.fail(f"recovery.max_attempts ({attempts}) must be >= 1")
    backoff = duration(ctx, "recovery.backoff", sec.get("backoff", d.backoff))
    backoff_max = duration(ctx, "recovery.backoff_max", sec.get("backoff_max", d.backoff_max))
    if backoff_max < backoff:
        ctx.fail(f"recovery.backoff_max ({fmt(backoff_max)}) must be >= recovery.backoff "
                 f"({fmt(backoff)})")
    without_lb = sec.get("without_lb", d.without_lb)
    if not isinstance(without_lb, bool):
        ctx.fail("recovery.without_lb must be true or false")
    return RecoveryConfig(exec=tuple(raw), webhook=webhook,
                          timeout=duration(ctx, "recovery.timeout",
                                           sec.get("timeout", d.timeout)),
                          max_attempts=attempts, backoff=backoff, backoff_max=backoff_max,
                          without_lb=without_lb)
