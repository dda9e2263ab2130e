"""The Raft wire codec: plain data only, so no message can run code when decoded.

pysyncobj serializes every wire message and every replicated command with
pickle, and unpickling can call any importable function. Even a peer that
holds the cluster secret must not be able to do that, so pickle is replaced
by this codec everywhere pysyncobj used it (see ``internals.install_codec``).

It carries exactly the types Raft messages consist of: ``dict`` (str or int
keys), ``list``, ``tuple``, ``str``, ``bytes``, ``int`` (64-bit signed),
``float``, ``bool`` and ``None``. Types are matched exactly (no subclasses),
so nothing with behaviour of its own is ever constructed. Anything else is
refused on encode and on decode with :class:`CodecError`. Decoding checks
every length against the bytes actually present (a forged count cannot make
it allocate), and nesting is limited to :data:`MAX_DEPTH`.

Layout: one tag byte per value, then for ints/floats 8 bytes big-endian,
for str/bytes a u32 length and the bytes, for list/tuple/dict a u32 count
and the items (dict: key, value, key, value ...).
"""

from __future__ import annotations

import struct
from typing import Any

MAX_DEPTH = 16

_NONE, _TRUE, _FALSE = b"N", b"T", b"F"
_INT, _FLOAT, _STR, _BYTES = 0x69, 0x64, 0x73, 0x62  # i d s b
_LIST, _TUPLE, _DICT = 0x6C, 0x74, 0x6D  # l t m

_Q = struct.Struct(">q")
_D = struct.Struct(">d")
_U32 = struct.Struct(">I")
_I_TAG = struct.Struct(">Bq")
_D_TAG = struct.Struct(">Bd")
_L_TAG = struct.Struct(">BI")
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


class CodecError(ValueError):
    """A value outside the codec's plain types, or bytes that are not a valid encoding."""


def encode(value: Any) -> bytes:
    """Encode plain data; raise :class:`CodecError` for any other type."""
    out: list[bytes] = []
    _enc(value, out, 0)
    return b"".join(out)


def _enc(value: Any, out: list[bytes], depth: int) -> None:
    kind = type(value)
    if kind is bytes:
        out.append(_L_TAG.pack(_BYTES, len(value)))
        out.append(value)
    elif kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise CodecError("integer outside the 64-bit range")
        out.append(_I_TAG.pack(_INT, value))
    elif kind is str:
        raw = value.encode("utf-8")
        out.append(_L_TAG.pack(_STR, len(raw)))
        out.append(raw)
    elif value is None:
        out.append(_NONE)
    elif kind is bool:
        out.append(_TRUE if value else _FALSE)
    elif kind is float:
        out.append(_D_TAG.pack(_FLOAT, value))
    elif kind is dict or kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            raise CodecError(f"nesting deeper than {MAX_DEPTH}")
        if kind is dict:
            out.append(_L_TAG.pack(_DICT, len(value)))
            for k, v in value.items():
                if type(k) is not str and type(k) is not int:
                    raise CodecError(f"dict key of type {type(k).__name__} is not allowed")
                _enc(k, out, depth + 1)
                _enc(v, out, depth + 1)
        else:
            out.append(_L_TAG.pack(_LIST if kind is list else _TUPLE, len(value)))
            for item in value:
                _enc(item, out, depth + 1)
    else:
        raise CodecError(f"type {kind.__name__} is not allowed on the raft wire")


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode one value that must span all of ``data``; :class:`CodecError` otherwise."""
    buf = bytes(data)
    try:
        value, pos = _dec(buf, 0, 0)
    except (struct.error, IndexError, UnicodeDecodeError, RecursionError) as exc:
        raise CodecError(f"malformed encoding: {type(exc).__name__}") from None
    if pos != len(buf):
        raise CodecError(f"{len(buf) - pos} trailing bytes after the value")
    return value


def _dec(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    tag = buf[pos]
    pos += 1
    if tag == _INT:
        return _Q.unpack_from(buf, pos)[0], pos + 8
    if tag == _BYTES or tag == _STR:
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        end = pos + n
        if end > len(buf):
            raise CodecError("length runs past the end of the data")
        raw = buf[pos:end]
        return (raw if tag == _BYTES else raw.decode("utf-8")), end
    if tag == 0x4E:  # N
        return None, pos
    if tag == 0x54:  # T
        return True, pos
    if tag == 0x46:  # F
        return False, pos
    if tag == _FLOAT:
        return _D.unpack_from(buf, pos)[0], pos + 8
    if tag == _LIST or tag == _TUPLE or tag == _DICT:
        if depth >= MAX_DEPTH:
            raise CodecError(f"nesting deeper than {MAX_DEPTH}")
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        # every item takes at least one byte: a forged count fails here, before any work
        if n > len(buf) - pos:
            raise CodecError("count runs past the end of the data")
        if tag == _DICT:
            result: dict[Any, Any] = {}
            for _ in range(n):
                key, pos = _dec(buf, pos, depth + 1)
                if type(key) is not str and type(key) is not int:
                    raise CodecError("dict key must be str or int")
                result[key], pos = _dec(buf, pos, depth + 1)
            return result, pos
        items = []
        for _ in range(n):
            item, pos = _dec(buf, pos, depth + 1)
            items.append(item)
        return (items if tag == _LIST else tuple(items)), pos
    raise CodecError(f"unknown type tag 0x{tag:02x}")


class PickleShim:
    """Stands in for the ``pysyncobj.pickle`` module inside pysyncobj's modules.

    pysyncobj calls ``pickle.dumps``/``pickle.loads`` for replicated commands
    (log entries), large-entry transmissions and membership/version commands;
    with this shim those are the codec, so a log entry from any peer is
    plain data too. ``to_bytes`` is kept because the stock serializer uses it.
    """

    @staticmethod
    def dumps(obj: Any, protocol: int | None = None) -> bytes:
        return encode(obj)

    @staticmethod
    def loads(data: Any) -> Any:
        if isinstance(data, str):
            data = data.encode("utf-8")
        return decode(data)

    @staticmethod
    def to_bytes(data: Any) -> bytes:
        return data if isinstance(data, bytes) else str(data).encode("utf-8")

    @staticmethod
    def load(_file: Any) -> Any:
        raise CodecError("loading pickles is disabled in vnfha")

    @staticmethod
    def dump(_obj: Any, _file: Any, protocol: int | None = None) -> None:
        raise CodecError("writing pickles is disabled in vnfha")
