"""The one place that says what a name, a VIP, a node address and a request id may be,
and how any user-provided string is shown safely.

Config loading (confparse, agents/config.py), the gRPC servicers and the replicated
state machine (commands.validate_command) all call these functions, so a value is
refused with the same words wherever it enters. Pure functions, no I/O.

Why these rules: names become parts of etcd keys, file names of hook environments,
HAProxy server names, log fields and table cells. Letters, digits, '.', '_' and '-'
(host names with dots and hyphens fit; upper case is accepted and names are
case-sensitive) cover every real deployment we know of and nothing that needs quoting.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

#: Node ids, group names, member names, LB names, coordinator ids.
NAME_MAX = 63
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
NAME_RULE = ("1-63 characters of letters, digits, '_', '.' or '-', starting with a letter "
             "or digit")

#: Client-chosen request ids (uuid hex, or a path-like id such as the pool acks').
REQUEST_ID_MAX = 128
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+=-]{0,127}$")

#: A node's address as the LB agents see it: an IP address or a DNS host name.
ADDRESS_MAX = 253
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")

#: Member priorities: higher wins an election.
PRIORITY_MIN = 0
PRIORITY_MAX = 1000

#: Free text carried in commands (reasons, recovery messages): stored and shown, so bounded.
TEXT_MAX = 1024

#: How much of a user-provided string `safe` shows.
SHOW_MAX = 200


class InvalidValue(ValueError):
    """A user-provided value breaks the rules above; the message says which and why."""


def check_name(kind: str, value: Any) -> str:
    """`value` if it is a valid name; otherwise InvalidValue naming `kind` (e.g. "group")."""
    if not isinstance(value, str):
        raise InvalidValue(f"{kind} name must be a string, got {type(value).__name__}")
    if not NAME_RE.fullmatch(value):
        raise InvalidValue(f"{kind} name {quoted(value)} is invalid: it must be {NAME_RULE}")
    return value


def is_name(value: Any) -> bool:
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def check_vip(value: Any) -> str:
    """A VIP is an interface address with an explicit prefix length ("198.18.0.100/24",
    "2001:db8::10/64"), or "" for a group without one. Returned stripped, as given
    otherwise (the agent parses it again with `ipaddress`)."""
    if not isinstance(value, str):
        raise InvalidValue(f"vip must be a string, got {type(value).__name__}")
    text = value.strip()
    if text == "":
        return ""
    bad = (f"vip {quoted(value)} is not an IPv4/IPv6 interface address with a prefix "
           "length, like 198.18.0.100/24 or 2001:db8::10/64")
    if "/" not in text or len(text) > 64:
        raise InvalidValue(bad)
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise InvalidValue(bad) from None
    if iface.ip.is_unspecified or iface.ip.is_multicast:
        raise InvalidValue(f"vip {text} is not a unicast host address")
    return text


def check_address(value: Any) -> str:
    """A node address: "" (none), an IP address, or a DNS host name."""
    if not isinstance(value, str):
        raise InvalidValue(f"node address must be a string, got {type(value).__name__}")
    if value == "":
        return value
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOST_RE.fullmatch(value):
        raise InvalidValue(f"node address {quoted(value)} is not an IP address or a host "
                           "name")
    return value


def check_endpoint(value: Any) -> str:
    """A listener endpoint: "" (none), or HOST:PORT (an IPv6 host in brackets) where
    HOST passes check_address and PORT is 1-65535."""
    if not isinstance(value, str):
        raise InvalidValue(f"endpoint must be a string, got {type(value).__name__}")
    if value == "":
        return value
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            host = "!"  # brackets are for IPv6 only
    elif ":" in host:
        host = "!"  # an IPv6 host must be bracketed
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535 or not host:
        raise InvalidValue(f"endpoint {quoted(value)} is not HOST:PORT with a port in "
                           "1-65535")
    try:
        check_address(host)
    except InvalidValue:
        raise InvalidValue(f"endpoint {quoted(value)}: the host is not an IP address or a "
                           "host name") from None
    return value


def check_request_id(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"request id must be a string, got {type(value).__name__}")
    if not REQUEST_ID_RE.fullmatch(value):
        raise InvalidValue(f"request id {quoted(value)} is invalid: 1-{REQUEST_ID_MAX} "
                           "characters of letters, digits and _ . : / @ + = -, starting with "
                           "a letter or digit")
    return value


def check_priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"priority must be an integer, got {type(value).__name__}")
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise InvalidValue(f"priority {value} is out of range {PRIORITY_MIN}..{PRIORITY_MAX}")
    return value


def check_text(what: str, value: Any, limit: int = TEXT_MAX) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidValue(f"{what} is {len(value)} characters; the limit is {limit}")
    return value


# -- showing untrusted strings ---------------------------------------------------------------

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape_char(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or ch in "\u2028\u2029":
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    if 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069 or code == 0xFEFF:
        return f"\\u{code:04x}"  # bidirectional overrides reorder what a terminal shows
    return ch


def safe(value: Any, limit: int = SHOW_MAX) -> str:
    """`value` as one line a terminal or log reader can trust: control characters (ANSI
    escapes, newlines, C1 controls, bidi overrides) escaped, at most `limit` characters
    shown after escaping (a longer value is cut and says how long it was). Backslashes are
    doubled so an escaped sequence cannot be confused with a real one."""
    text = value if isinstance(value, str) else str(value)
    parts: list[str] = []
    used = 0
    for ch in text:
        esc = _escape_char(ch)
        if used + len(esc) > limit:
            return "".join(parts) + f"...({len(text)} chars)"
        parts.append(esc)
        used += len(esc)
    return "".join(parts)


def quoted(value: Any, limit: int = 80) -> str:
    """`safe(value)` in single quotes, for error messages that name a refused value."""
    return f"'{safe(value, limit)}'"


def needs_escaping(text: str) -> bool:
    """True if `safe` would change `text` (other than by cutting it)."""
    return any(_escape_char(ch) != ch for ch in text)
