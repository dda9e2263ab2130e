"""Protobuf wire format of the few small messages `vnfha switchover` and `vnfha failover`
exchange, so those commands never import protobuf or the generated stubs.

Why: a switchover during a maintenance window is one process start per command, and
importing protobuf and admin_pb2 is about a quarter of that start (bench/README.md,
switchover_cli.py). These messages are flat (strings, unsigned ints, bools), so their
encoding is a few lines. The generated classes stay the reference: a unit test
(tests/unit/test_cli_wire.py) checks both directions against admin_pb2 for every
field, so a field added to the .proto and not here fails the build, not a switchover.

Decoding skips fields it does not know (a newer coordinator may add some) and raises
`ValueError` on malformed bytes; nothing else is done with what came off the wire.
"""

from __future__ import annotations

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

SWITCHOVER = "/vnfha.v1.AdminService/Switchover"
FAILOVER = "/vnfha.v1.AdminService/Failover"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: str | int | bool) -> bytes:
    """One field, or nothing for proto3's default value (as protobuf encodes it)."""
    if isinstance(value, str):
        if not value:
            return b""
        data = value.encode()
        return _varint(number << 3 | _LEN) + _varint(len(data)) + data
    value = int(value)
    if value == 0:
        return b""
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"field {number}: {value} is not an unsigned 64-bit value")
    return _varint(number << 3 | _VARINT) + _varint(value)


def switchover_request(group: str, to_member: str, request_id: str, wait_ms: int) -> bytes:
    """vnfha.v1.SwitchoverRequest."""
    return (_field(1, group) + _field(2, to_member) + _field(3, request_id)
            + _field(4, wait_ms))


def failover_request(group: str, to_member: str, force: bool, request_id: str,
                     wait_ms: int) -> bytes:
    """vnfha.v1.FailoverRequest."""
    return (_field(1, group) + _field(2, to_member) + _field(3, force)
            + _field(4, request_id) + _field(5, wait_ms))


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or over-long varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> dict[int, int | bytes]:
    """number -> value of every varint and length-delimited field (last one wins, as in
    protobuf); fixed-width fields are skipped."""
    out: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, kind = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if kind == _VARINT:
            out[number], pos = _read_varint(data, pos)
        elif kind == _LEN:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated length-delimited field")
            out[number] = data[pos:pos + size]
            pos += size
        elif kind in (_I64, _I32):
            pos += 8 if kind == _I64 else 4
            if pos > len(data):
                raise ValueError("truncated fixed-width field")
        else:
            raise ValueError(f"unsupported wire type {kind}")
    return out


class SwitchoverAnswer:
    """vnfha.v1.SwitchoverResponse / FailoverResponse (the same fields). A plain class:
    dataclasses would cost an import on the path this module exists to keep short."""

    __slots__ = ("completed", "epoch", "from_member", "has_vip", "serving", "to_member",
                 "vip_held")

    def __init__(self, from_member: str = "", to_member: str = "", epoch: int = 0,
                 completed: bool = False, serving: bool = False, vip_held: bool = False,
                 has_vip: bool = False) -> None:
        self.from_member, self.to_member, self.epoch = from_member, to_member, epoch
        self.completed, self.serving = completed, serving
        self.vip_held, self.has_vip = vip_held, has_vip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SwitchoverAnswer) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "SwitchoverAnswer(" + ", ".join(f"{k}={getattr(self, k)!r}"
                                               for k in self.__slots__) + ")"


def switchover_answer(data: bytes) -> SwitchoverAnswer:
    """Decode a SwitchoverResponse or FailoverResponse."""
    f = _fields(data)

    def text(n: int) -> str:
        v = f.get(n, b"")
        if not isinstance(v, bytes):
            raise ValueError(f"field {n} is not a string")
        return v.decode()  # UnicodeDecodeError is a ValueError

    def number(n: int) -> int:
        v = f.get(n, 0)
        if not isinstance(v, int):
            raise ValueError(f"field {n} is not a number")
        return v

    return SwitchoverAnswer(from_member=text(1), to_member=text(2), epoch=number(3),
                            completed=bool(number(4)), serving=bool(number(5)),
                            vip_held=bool(number(6)), has_vip=bool(number(7)))
