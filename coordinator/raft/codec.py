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


_pack_tag_len = _L_TAG.pack
_pack_tag_int = _I_TAG.pack
_pack_tag_float = _D_TAG.pack


def _enc(value: Any, out: list[bytes], depth: int) -> None:
    # most frequent types first: this runs for every value of every message
    kind = type(value)
    append = out.append
    if kind is str:
        raw = value.encode("utf-8")
        append(_pack_tag_len(_STR, len(raw)))
        append(raw)
    elif kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise CodecError("integer outside the 64-bit range")
        append(_pack_tag_int(_INT, value))
    elif kind is bytes:
        append(_pack_tag_len(_BYTES, len(value)))
        append(value)
    elif kind is dict:
        if depth >= MAX_DEPTH:
            raise CodecError(f"nesting deeper than {MAX_DEPTH}")
        append(_pack_tag_len(_DICT, len(value)))
        depth += 1
        for k, v in value.items():
            if type(k) is str:
                raw = k.encode("utf-8")
                append(_pack_tag_len(_STR, len(raw)))
                append(raw)
            elif type(k) is int:
                _enc(k, out, depth)
            else:
                raise CodecError(f"dict key of type {type(k).__name__} is not allowed")
            _enc(v, out, depth)
    elif kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            raise CodecError(f"nesting deeper than {MAX_DEPTH}")
        append(_pack_tag_len(_LIST if kind is list else _TUPLE, len(value)))
        depth += 1
        for item in value:
            _enc(item, out, depth)
    elif value is None:
        append(_NONE)
    elif kind is bool:
        append(_TRUE if value else _FALSE)
    elif kind is float:
        append(_pack_tag_float(_FLOAT, value))
    else:
        raise CodecError(f"type {kind.__name__} is not allowed on the raft wire")


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode one value that must span all of ``data``; :class:`CodecError` otherwise."""
    buf = data if type(data) is bytes else bytes(data)
    try:
        value, pos = _dec(buf, 0, 0)
    except (struct.error, IndexError, UnicodeDecodeError, RecursionError) as exc:
        raise CodecError(f"malformed encoding: {type(exc).__name__}") from None
    if pos != len(buf):
        raise CodecError(f"{len(buf) - pos} trailing bytes after the value")
    return value


_unpack_q = _Q.unpack_from
_unpack_d = _D.unpack_from
_unpack_u32 = _U32.unpack_from


def _dec(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    tag = buf[pos]
    pos += 1
    if tag == _STR or tag == _BYTES:
        n = _unpack_u32(buf, pos)[0]
        pos += 4
        end = pos + n
        if end > len(buf):
            raise CodecError("length runs past the end of the data")
        if tag == _STR:
            return buf[pos:end].decode("utf-8"), end
        return buf[pos:end], end
    if tag == _INT:
        return _unpack_q(buf, pos)[0], pos + 8
    if tag == _DICT or tag == _LIST or tag == _TUPLE:
        if depth >= MAX_DEPTH:
            raise CodecError(f"nesting deeper than {MAX_DEPTH}")
        n = _unpack_u32(buf, pos)[0]
        pos += 4
        # every item takes at least one byte: a forged count fails here, before any work
        if n > len(buf) - pos:
            raise CodecError("count runs past the end of the data")
        depth += 1
        if tag == _DICT:
            result: dict[Any, Any] = {}
            for _ in range(n):
                if buf[pos] == _STR:  # the usual key, decoded inline
                    size = _unpack_u32(buf, pos + 1)[0]
                    start = pos + 5
                    pos = start + size
                    if pos > len(buf):
                        raise CodecError("length runs past the end of the data")
                    key: Any = buf[start:pos].decode("utf-8")
                elif buf[pos] == _INT:
                    key = _unpack_q(buf, pos + 1)[0]
                    pos += 9
                else:
                    raise CodecError("dict key must be str or int")
                result[key], pos = _dec(buf, pos, depth)
            return result, pos
        items = []
        append = items.append
        for _ in range(n):
            item, pos = _dec(buf, pos, depth)
            append(item)
        return (items if tag == _LIST else tuple(items)), pos
    if tag == 0x4E:  # N
        return None, pos
    if tag == 0x54:  # T
        return True, pos
    if tag == 0x46:  # F
        return False, pos
    if tag == _FLOAT:
        return _unpack_d(buf, pos)[0], pos + 8
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
