"""LeaseTracker arithmetic and the AES-GCM wire encryptor."""

from __future__ import annotations

import pytest

from vnfha.coordinator.raft.crypto import AuthError, WireKeys
from vnfha.coordinator.raft.transport import LeaseTracker


def test_quorum_contact_is_majority_th_newest() -> None:
    lt = LeaseTracker({"b", "c", "d", "e"})  # 5 voters: majority 3
    assert lt.quorum_contact(100.0) is None  # not leader
    lt.start_term(10.0)
    assert lt.quorum_contact(100.0) is None  # only ourselves
    lt.record("b", 50.0)
    assert lt.quorum_contact(100.0) is None
    lt.record("c", 40.0)
    assert lt.quorum_contact(100.0) == 40.0
    lt.record("d", 60.0)
    assert lt.quorum_contact(100.0) == 50.0
    lt.record("b", 45.0)  # older echo never moves a follower back
    assert lt.quorum_contact(100.0) == 50.0
    lt.record("zz", 99.0)  # not a voter
    assert lt.quorum_contact(100.0) == 50.0


def test_stamps_from_before_leadership_do_not_count() -> None:
    lt = LeaseTracker({"b", "c"})
    lt.start_term(10.0)
    assert lt.is_stale(9.0) and not lt.is_stale(10.0)
    lt.record("b", 9.0)
    assert lt.quorum_contact(20.0) is None
    lt.record("b", 12.0)
    assert lt.quorum_contact(20.0) == 12.0
    lt.start_term(30.0)  # re-elected: forget the old term's contact
    assert lt.quorum_contact(40.0) is None
    lt.stop_term()
    assert lt.quorum_contact(40.0) is None


def test_single_node_lease_is_now() -> None:
    lt = LeaseTracker(set())
    lt.start_term(1.0)
    assert lt.quorum_contact(5.0) == 5.0


def test_wire_keys_roundtrip_wrong_secret_replay_and_rotation() -> None:
    current, old = "c" * 32, "o" * 32
    sender = WireKeys(current).sealer()
    frames = [sender.seal(b"one"), sender.seal(b"two")]
    receiver = WireKeys(current).opener()
    assert receiver.open(WireKeys(current), frames[0]) == b"one"
    with pytest.raises(AuthError):  # a replayed frame is out of sequence
        receiver.open(WireKeys(current), frames[0])
    assert receiver.open(WireKeys(current), frames[1]) == b"two"
    with pytest.raises(AuthError):
        WireKeys("e" * 32).opener().open(WireKeys("e" * 32), frames[0])
    tampered = frames[0][:-1] + bytes([frames[0][-1] ^ 1])
    with pytest.raises(AuthError):
        WireKeys(current).opener().open(WireKeys(current), tampered)
    # rotation: a node on the new secret still accepts a sender on the old one
    rotated = WireKeys("n" * 32, previous=old)
    opener = rotated.opener()
    assert opener.open(rotated, WireKeys(old).sealer().seal(b"x")) == b"x"
    assert opener.used_previous
    assert "c" not in repr(WireKeys(current))
