"""Building blocks for strict YAML config files (coordinator and agent).

Every check raises `ConfigError` naming the file and the setting's path, and
unknown keys are errors, so a typo never silently becomes a default.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from vnfha.coordinator import names

#: Node ids and group names: they end up in file names, log lines and gRPC fields.
NAME_RE = names.NAME_RE  # the one rule (coordinator/names.py), re-exported for callers

_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and the setting."""




class Ctx:
    """Carries the source name so every message starts with it."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {message}")


def read_yaml(p: Path) -> Any:
    import yaml  # here, not at the top: `vnfha status` needs parse_address, not YAML

    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {yaml_error_line(exc)}") from None


def yaml_error_line(exc: Exception) -> str:
    """PyYAML's multi-line message as one line: 'line 2, column 1: expected ...'."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


def tname(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def hint(word: str, candidates: Sequence[str]) -> str:
    import difflib  # only for a typo's hint: not on every CLI start (parse_address)

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(ctx: Ctx, where: str, sec: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Unknown keys are errors: a typo'd setting silently falling back to its default is
    how clusters end up with the wrong timeouts."""
    for key in sec:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            ctx.fail(f"unknown setting {path}{hint(str(key), allowed)}; "
                     f"allowed here: {', '.join(allowed)}")


def section(ctx: Ctx, where: str, value: Any) -> Mapping[str, Any]:
    if value is None:  # absent, or a bare `raft:` line: all defaults
        return {}
    if not isinstance(value, Mapping):
        ctx.fail(f"{where} must be a mapping, got {tname(value)}")
    return value


def name(ctx: Ctx, where: str, value: Any) -> str:
    if not isinstance(value, str):
        ctx.fail(f"{where} must be a string, got {tname(value)}")
    if not names.is_name(value):
        ctx.fail(f"{where} ({names.quoted(value)}) must be {names.NAME_RULE}")
    return value


def choice(ctx: Ctx, where: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        suggestion = hint(value, choices) if isinstance(value, str) else ""
        ctx.fail(f"{where} ({value!r}) must be one of: {', '.join(choices)}{suggestion}")
    return value


def number(ctx: Ctx, where: str, value: Any) -> float:
    # bool is an int subclass: `ttl: yes` is a typo, not 1 second.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        ctx.fail(f"{where} must be a number (seconds), got {tname(value)}")
    if not math.isfinite(value):
        ctx.fail(f"{where} ({value}) must be finite")
    return float(value)


def duration(ctx: Ctx, where: str, value: Any) -> float:
    seconds = number(ctx, where, value)
    if seconds <= 0:
        ctx.fail(f"{where} ({fmt(seconds)}) must be > 0 seconds")
    return seconds


def integer(ctx: Ctx, where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.fail(f"{where} must be an integer, got {tname(value)}")
    return value


def path_setting(ctx: Ctx, where: str, value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        ctx.fail(f"{where} must be a non-empty path, got {tname(value)}")
    p = Path(value.strip()).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def address(ctx: Ctx, where: str, value: Any) -> str:
    if not isinstance(value, str):
        ctx.fail(f"{where} must be a 'host:port' string, got {tname(value)}")
    try:
        parse_address(value)
    except ValueError as exc:
        ctx.fail(f"{where} ({value!r}): {exc}")
    return value


def parse_address(value: str) -> tuple[str, int]:
    """Split 'host:port' (IPv6 as '[addr]:port') and validate both; raise ValueError."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("expected '[ipv6]:port'")
        port_s = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_s = value.rpartition(":")
        if not sep or not host:
            raise ValueError("expected 'host:port'")
        if ":" in host:
            raise ValueError("an IPv6 host must be in brackets: '[addr]:port'")
        if not _HOST_RE.fullmatch(host):
            raise ValueError(f"{host!r} is not a valid host name or IPv4 address")
    if not port_s.isdigit() or not 1 <= int(port_s) <= 65535:
        raise ValueError(f"port {port_s!r} must be a number in 1..65535")
    return host, int(port_s)


def norm_address(addr: str) -> str:
    host, port = parse_address(addr)
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        host = host.lower()
    return f"{host}:{port}"


def fmt(x: float) -> str:
    """Short float for messages: ttl/3 of 0.6 prints as 0.2, not 0.19999999999999998."""
    return f"{x:.6g}"


def said(setting: str, value: float, written: bool) -> str:
    """How a message names a value: 'lease.ttl is 0.1' when the file set it, and
    'lease.keepalive_interval is 0.06 (the default: this file does not set it)' when it
    did not, so an error never pins on the user a value they never wrote."""
    note = "" if written else " (the default: this file does not set it)"
    return f"{setting} is {fmt(value)}{note}"


def le(a: float, b: float) -> bool:
    # Tolerant: keepalive 0.2 with ttl 0.6 is exactly ttl/3 to a human.
    return a <= b or math.isclose(a, b, rel_tol=1e-9)


def lt(a: float, b: float) -> bool:
    return a < b and not math.isclose(a, b, rel_tol=1e-9)
