"""The load generator's cached keepalive encoding is the real request, byte for byte.

Why: loadgen.py sends each simulated node's keepalive as its cached encoding around
`seq` plus that round's seq field (`split_request` / `with_seq`), not the serializer's
output. A coordinator must receive exactly the request a real agent's serializer
would send, or the load it measures is not the agents' load. Pure: no sockets.
"""

from __future__ import annotations

import random

import loadgen
import pytest

from vnfha.v1 import agent_pb2, types_pb2

SEQS = [0, 1, 2, 127, 128, 255, 300, 16383, 16384, 2**32, 2**63 - 1, 2**63, 2**64 - 1]


def request(rnd: random.Random, members: int) -> agent_pb2.KeepaliveRequest:
    return agent_pb2.KeepaliveRequest(
        node=f"ln{rnd.randrange(100000):05d}",
        members=[agent_pb2.MemberReport(
            group=f"lg{rnd.randrange(10000):04d}", member=f"m{k % 2}",
            health=rnd.choice([types_pb2.HEALTH_HEALTHY, types_pb2.HEALTH_UNHEALTHY]),
            seen_epoch=rnd.choice([0, 1, 127, 128, rnd.randrange(2**64)]),
            active_epoch=rnd.choice([0, rnd.randrange(2**40)]),
            vip_held=rnd.random() < 0.5)
            for k in range(members)],
        generation=rnd.choice([0, rnd.randrange(2**64)]), leased=rnd.random() < 0.5)


@pytest.mark.parametrize("members", [0, 1, 2, 5, 40])
def test_seq_plus_cached_rest_is_the_serializers_encoding(members: int) -> None:
    rnd = random.Random(members)
    for _ in range(20):
        req = request(rnd, members)
        head, rest = loadgen.split_request(req)
        for seq in SEQS + [rnd.randrange(2**64) for _ in range(20)]:
            full = agent_pb2.KeepaliveRequest()
            full.CopyFrom(req)
            full.seq = seq
            encoded = loadgen.with_seq(head, seq, rest)
            parsed = agent_pb2.KeepaliveRequest()
            parsed.ParseFromString(encoded)
            assert parsed == full, seq
            assert parsed.seq == seq
            assert encoded == full.SerializeToString(), seq


def test_a_changed_member_list_is_sent_after_changed() -> None:
    """Sim.payload keeps its encoding only while the reports stay the same."""
    s = loadgen.Sim(3, "ln00003", loadgen.hosted(3, 10, None), None,  # type: ignore[arg-type]
                    [])
    s.seq = 128
    first = agent_pb2.KeepaliveRequest.FromString(s.payload())
    assert first.seq == 128 and first.node == "ln00003"
    assert [(m.group, m.seen_epoch, m.active_epoch) for m in first.members] == \
        [("lg0001", 0, 0)]
    s.seen["lg0001"], s.held["lg0001"] = 7, 7
    s.changed()
    s.seq = 2**63
    again = agent_pb2.KeepaliveRequest.FromString(s.payload())
    assert again == s.request()
    assert [(m.group, m.seen_epoch, m.active_epoch) for m in again.members] == \
        [("lg0001", 7, 7)]


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_a_seq_outside_uint64_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="uint64"):
        loadgen.varint(bad)
