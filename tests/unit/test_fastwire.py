"""The fast path's datagram codec: every way a datagram can be wrong is rejected.

Each test builds a valid datagram and breaks one thing about it: a flipped byte in
the header or the ciphertext, a cut tail, a replay, another session's key, the other
direction's kind (a reflected datagram), an oversize or undersize datagram.
"""

from __future__ import annotations

import pytest

from vnfha.coordinator import fastwire as W
from vnfha.v1 import agent_pb2, types_pb2

KEY = bytes(range(32))
KEY_ID = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def keepalive(seq: int = 7) -> bytes:
    return agent_pb2.KeepaliveRequest(node="vm1", seq=seq, members=[agent_pb2.MemberReport(
        group="web", member="web-1", health=types_pb2.HEALTH_HEALTHY, seen_epoch=3,
        active_epoch=3)]).SerializeToString()


def receive(key: W.SessionKey, guard: W.ReplayGuard, datagram: bytes,
            kind: int = W.KIND_KEEPALIVE) -> bytes:
    return W.open_checked(key, guard, W.parse_header(datagram, kind), datagram)


def rejected(key: W.SessionKey, guard: W.ReplayGuard, datagram: bytes,
             kind: int = W.KIND_KEEPALIVE) -> str:
    with pytest.raises(W.Rejected) as e:
        receive(key, guard, datagram, kind)
    return e.value.reason


def test_round_trip_and_payload_is_encrypted() -> None:
    key = W.SessionKey(KEY_ID, KEY)
    d = key.seal(W.KIND_KEEPALIVE, 1, keepalive())
    assert b"vm1" not in d and b"web-1" not in d  # nothing readable on the wire
    assert len(d) == len(keepalive()) + W.MIN_DATAGRAM
    assert receive(key, W.ReplayGuard(), d) == keepalive()


@pytest.mark.parametrize("where", ["magic", "version", "kind", "key_id", "counter",
                                   "ciphertext", "tag"])
def test_any_changed_byte_is_rejected(where: str) -> None:
    key = W.SessionKey(KEY_ID, KEY)
    d = bytearray(key.seal(W.KIND_KEEPALIVE, 5, keepalive()))
    at = {"magic": 0, "version": 2, "kind": 3, "key_id": 6, "counter": 19,
          "ciphertext": W.HEADER.size + 2, "tag": len(d) - 1}[where]
    d[at] ^= 0x01
    reason = rejected(key, W.ReplayGuard(), bytes(d))
    assert reason in {"malformed", "unknown_key", "unauthenticated"}
    if where in ("counter", "ciphertext", "tag"):
        assert reason == "unauthenticated"  # the header is authenticated data too


@pytest.mark.parametrize("cut", [1, 8, 16, 30])
def test_truncated_datagram_is_rejected(cut: int) -> None:
    key = W.SessionKey(KEY_ID, KEY)
    d = key.seal(W.KIND_KEEPALIVE, 1, keepalive())
    assert rejected(key, W.ReplayGuard(), d[:-cut]) in {"unauthenticated", "malformed"}


def test_header_alone_and_empty_are_malformed() -> None:
    key = W.SessionKey(KEY_ID, KEY)
    d = key.seal(W.KIND_KEEPALIVE, 1, b"")
    assert rejected(key, W.ReplayGuard(), d[:W.HEADER.size]) == "malformed"
    assert rejected(key, W.ReplayGuard(), b"") == "malformed"
    assert rejected(key, W.ReplayGuard(), b"GET / HTTP/1.0\r\n\r\n" * 2) == "malformed"


def test_replay_and_older_counter_are_rejected() -> None:
    key = W.SessionKey(KEY_ID, KEY)
    guard = W.ReplayGuard()
    d5 = key.seal(W.KIND_KEEPALIVE, 5, keepalive(5))
    d4 = key.seal(W.KIND_KEEPALIVE, 4, keepalive(4))
    receive(key, guard, d5)
    assert rejected(key, guard, d5) == "replayed"
    # Overtaken by a newer one: stale, dropped (applying it would put old reports back).
    assert rejected(key, guard, d4) == "replayed"
    receive(key, guard, key.seal(W.KIND_KEEPALIVE, 6, keepalive(6)))


def test_counter_zero_is_malformed() -> None:
    key = W.SessionKey(KEY_ID, KEY)
    d = bytearray(key.seal(W.KIND_KEEPALIVE, 1, keepalive()))
    d[12:20] = bytes(8)
    assert rejected(key, W.ReplayGuard(), bytes(d)) == "malformed"


def test_forgery_does_not_move_the_replay_guard() -> None:
    """A forged datagram with a huge counter must not lock the real sender out."""
    key = W.SessionKey(KEY_ID, KEY)
    guard = W.ReplayGuard()
    forged = bytearray(key.seal(W.KIND_KEEPALIVE, 2**60, keepalive()))
    forged[-1] ^= 0xFF
    assert rejected(key, guard, bytes(forged)) == "unauthenticated"
    assert receive(key, guard, key.seal(W.KIND_KEEPALIVE, 1, keepalive())) == keepalive()


def test_wrong_key_is_rejected() -> None:
    mine = W.SessionKey(KEY_ID, KEY)
    other_same_id = W.SessionKey(KEY_ID, bytes(32))
    other_id = W.SessionKey(b"\xff" * 8, KEY)
    d = other_same_id.seal(W.KIND_KEEPALIVE, 1, keepalive())
    assert rejected(mine, W.ReplayGuard(), d) == "unauthenticated"
    d = other_id.seal(W.KIND_KEEPALIVE, 1, keepalive())
    assert rejected(mine, W.ReplayGuard(), d) == "unknown_key"


def test_reflected_datagram_is_rejected() -> None:
    """An agent's own keepalive sent back to it is not an acknowledgement, and a
    coordinator's ack is not a keepalive: the kind is checked and is in the nonce."""
    key = W.SessionKey(KEY_ID, KEY)
    d = key.seal(W.KIND_KEEPALIVE, 1, keepalive())
    assert rejected(key, W.ReplayGuard(), d, kind=W.KIND_ACK) == "malformed"
    # Rewriting the kind byte makes the tag fail (the header is authenticated).
    d2 = bytearray(d)
    d2[3] = W.KIND_ACK
    assert rejected(key, W.ReplayGuard(), bytes(d2), kind=W.KIND_ACK) == "unauthenticated"


def test_oversize_is_rejected_and_never_sealed() -> None:
    key = W.SessionKey(KEY_ID, KEY)
    big = key.seal(W.KIND_KEEPALIVE, 1, b"x" * (W.MAX_DATAGRAM - W.MIN_DATAGRAM))
    assert len(big) == W.MAX_DATAGRAM
    receive(key, W.ReplayGuard(), big)
    assert rejected(key, W.ReplayGuard(), big + b"x") == "oversize"
    with pytest.raises(ValueError):
        key.seal(W.KIND_KEEPALIVE, 2, b"x" * W.MAX_DATAGRAM)


def test_key_never_in_repr() -> None:
    key = W.SessionKey(KEY_ID, KEY)
    assert KEY.hex() not in repr(key) and str(KEY) not in repr(key)
    with pytest.raises(ValueError):
        W.SessionKey(KEY_ID, KEY[:16])
