"""Structured logging: every line says what happened and to whom (member, epoch, ...).

Call sites pass facts in `extra={"event": {...}}` or as plain `extra` keys; the
JSON formatter emits them as fields, the text formatter appends them as k=v.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD:
            continue
        if key == "event" and isinstance(value, dict):
            out.update(value)
        else:
            out[key] = value
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 6), "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage(), **_fields(record)}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        ms = int(record.msecs)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{ts}.{ms:03d} {record.levelname.lower():7s} {record.name}: {record.getMessage()}"
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
