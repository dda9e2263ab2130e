"""LeaseTracker arithmetic and the AES-GCM wire encryptor."""

from __future__ import annotations

import pytest

from vnfha.coordinator.raft.crypto import AeadEncryptor
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


def test_aead_roundtrip_and_wrong_secret() -> None:
    a, b, evil = AeadEncryptor("s3cret"), AeadEncryptor(b"s3cret"), AeadEncryptor("other")
    token = a.encrypt_at_time(b"payload", 1234)
    assert b.extract_timestamp(token) == 1234
    assert b.decrypt(token) == b"payload"
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        evil.decrypt(token)
    tampered = token[:1] + (4321).to_bytes(8, "big") + token[9:]
    with pytest.raises(Exception):  # noqa: B017 - the timestamp is authenticated
        b.decrypt(tampered)
