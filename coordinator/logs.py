"""Structured logging: every line says what happened and to whom (member, epoch, ...).

Call sites pass facts in `extra={"event": {...}}` or as plain `extra` keys; the
JSON formatter emits them as fields, the text formatter appends them as k=v.

Field values are often user-provided (names, reasons, a peer's error text), so both
formatters pass every one through `names.safe`: control characters escaped (an ANSI
escape or a newline in a group name can neither repaint an operator's terminal nor
forge a second log line) and length bounded. Numbers and booleans stay as they are.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from vnfha.coordinator.names import safe

#: Longest value shown for one log field (a list or mapping counts as one value).
FIELD_MAX = 400

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


#: How many items of a list or mapping field are shown, and how deep.
ITEMS_MAX = 32
DEPTH_MAX = 3


def safe_value(value: Any, depth: int = 0) -> Any:
    """A log field value that is safe to write: numbers, booleans and None as they are,
    lists and mappings item by item (bounded), anything else as a bounded, escaped
    string."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth < DEPTH_MAX and isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        out = [safe_value(v, depth + 1) for v in items[:ITEMS_MAX]]
        if len(items) > ITEMS_MAX:
            out.append(f"...({len(items)} items)")
        return out
    if depth < DEPTH_MAX and isinstance(value, dict):
        shown = {safe(str(k), 64): safe_value(v, depth + 1)
                 for k, v in list(value.items())[:ITEMS_MAX]}
        if len(value) > ITEMS_MAX:
            shown["..."] = f"({len(value)} items)"
        return shown
    return safe(value, FIELD_MAX)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD:
            continue
        if key == "event" and isinstance(value, dict):
            out.update({safe(str(k), 64): safe_value(v) for k, v in value.items()})
        else:
            out[safe(key, 64)] = safe_value(value)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 6), "level": record.levelname.lower(),
               "logger": record.name, "msg": safe(record.getMessage(), 2000), **_fields(record)}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        ms = int(record.msecs)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        msg = safe(record.getMessage(), 2000)
        line = f"{ts}.{ms:03d} {record.levelname.lower():7s} {record.name}: {msg}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pysyncobj logs every reconnect attempt at warning; keep its errors only.
    logging.getLogger("pysyncobj").setLevel(logging.ERROR)
