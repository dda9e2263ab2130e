"""coordinator/cli_wire.py against the generated classes: the same bytes both ways, for
every field, so the .proto and the hand-written encoding cannot drift apart."""

from __future__ import annotations

import itertools

import pytest

from vnfha.coordinator import cli_wire
from vnfha.v1 import admin_pb2

ANSWER_FIELDS = ["from_member", "to_member", "epoch", "completed", "serving", "vip_held",
                 "has_vip"]


def test_every_field_of_the_messages_is_known_here() -> None:
    """A field added to the .proto must be added here too (or this fails)."""
    for msg in (admin_pb2.SwitchoverResponse, admin_pb2.FailoverResponse):
        assert [f.name for f in msg.DESCRIPTOR.fields] == ANSWER_FIELDS
        assert [f.number for f in msg.DESCRIPTOR.fields] == list(range(1, 8))
    assert [f.name for f in admin_pb2.SwitchoverRequest.DESCRIPTOR.fields] == [
        "group", "to_member", "request_id", "wait_ms"]
    assert [f.name for f in admin_pb2.FailoverRequest.DESCRIPTOR.fields] == [
        "group", "to_member", "force", "request_id", "wait_ms"]


@pytest.mark.parametrize("group,to,rid,wait", [
    ("web", "", "", 0), ("web", "web-b", "0123456789abcdef" * 2, 5000),
    ("g" * 63, "m" * 63, "r" * 128, 2**32 - 1), ("grüße", "ü", "a", 1)])
def test_requests_encode_exactly_as_protobuf(group: str, to: str, rid: str, wait: int) -> None:
    assert cli_wire.switchover_request(group, to, rid, wait) == admin_pb2.SwitchoverRequest(
        group=group, to_member=to, request_id=rid, wait_ms=wait).SerializeToString()
    for force in (False, True):
        assert cli_wire.failover_request(group, to, force, rid, wait) == \
            admin_pb2.FailoverRequest(group=group, to_member=to, force=force, request_id=rid,
                                      wait_ms=wait).SerializeToString()


def test_answers_decode_as_protobuf_for_every_combination() -> None:
    for flags in itertools.product([False, True], repeat=4):
        for epoch in (0, 1, 300, 2**63 + 5):
            kw = dict(from_member="web-a", to_member="web-b", epoch=epoch,
                      completed=flags[0], serving=flags[1], vip_held=flags[2],
                      has_vip=flags[3])
            for cls in (admin_pb2.SwitchoverResponse, admin_pb2.FailoverResponse):
                got = cli_wire.switchover_answer(cls(**kw).SerializeToString())
                assert got == cli_wire.SwitchoverAnswer(**kw)
    assert cli_wire.switchover_answer(b"") == cli_wire.SwitchoverAnswer()


def test_unknown_fields_are_skipped() -> None:
    """A newer coordinator may add fields of any wire type."""
    data = admin_pb2.SwitchoverResponse(to_member="b", epoch=3, completed=True,
                                        serving=True).SerializeToString()
    extra = (cli_wire._varint(99 << 3 | 2) + b"\x05hello"  # field 99, string
             + cli_wire._varint(20 << 3 | 1) + b"\x00" * 8  # field 20, fixed64
             + cli_wire._varint(21 << 3 | 5) + b"\x00" * 4  # field 21, fixed32
             + cli_wire._varint(22 << 3) + b"\x96\x01")  # field 22, varint
    got = cli_wire.switchover_answer(extra + data)
    assert got.to_member == "b" and got.epoch == 3 and got.completed and got.serving


@pytest.mark.parametrize("data", [
    b"\x08", b"\x12\x05ab", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"\x00\x01", b"\x0b", b"\x0a\x02\xff\xfe", b"\x18\x01\x1a\x00" + b"\x09\x00",
    b"\x0a\x01a\x08" + b"\xff" * 11])
def test_malformed_answers_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        cli_wire.switchover_answer(data)


def test_wrong_wire_type_for_a_known_field_is_refused() -> None:
    with pytest.raises(ValueError, match="not a string"):
        cli_wire.switchover_answer(b"\x08\x01")  # field 1 (a string) as a varint
    with pytest.raises(ValueError, match="not a number"):
        cli_wire.switchover_answer(b"\x1a\x01x")  # field 3 (a number) as bytes
