"""Read log entries written before the codec change, without unpickling them.

Journals written by earlier vnfha versions hold replicated calls as
pysyncobj pickled them: ``pickle.dumps((method_id, (payload,)), 2)``, where
the payload (our JSON command) is stored as ``_codecs.encode(text,
"latin1")``. Entries after the last snapshot are applied again on every
restart, so an upgraded node must still understand them, or it would
silently skip committed commands.

This module never unpickles: ``pickletools.genops`` only parses opcodes,
and an entry is accepted only if its opcodes are exactly the sequence
above (an int, that one global, two strings, tuples and memo puts), so
nothing else can be built or called. Anything else is not a legacy command.
"""

from __future__ import annotations

import pickletools

_INTS = {"BININT1", "BININT2", "BININT"}
_PUTS = {"BINPUT", "LONG_BINPUT"}
_SHAPE = ("PROTO", "INT", "GLOBAL", "PUT", "BINUNICODE", "PUT", "BINUNICODE", "PUT",
          "TUPLE2", "PUT", "REDUCE", "PUT", "TUPLE1", "PUT", "TUPLE2", "PUT", "STOP")


def legacy_command(raw: bytes) -> tuple[int, bytes] | None:
    """``(method_id, payload)`` of a pre-codec entry body, or None if it is not one."""
    if not raw.startswith(b"\x80\x02"):
        return None
    try:
        ops = list(pickletools.genops(raw))
    except Exception:  # any malformed pickle: simply not a legacy command
        return None
    names = tuple("INT" if op.name in _INTS else "PUT" if op.name in _PUTS else op.name
                  for op, _arg, _pos in ops)
    if names != _SHAPE or ops[-1][2] != len(raw) - 1:
        return None
    if ops[0][1] != 2 or ops[2][1] != "_codecs encode" or ops[6][1] != "latin1":
        return None
    method_id, text = ops[1][1], ops[4][1]
    if type(method_id) is not int or type(text) is not str:
        return None
    try:
        return method_id, text.encode("latin1")
    except UnicodeEncodeError:
        return None
