"""The guardian's pure state, and the real process removing a VIP in a namespace."""

from __future__ import annotations

import time

import pytest

from vnfha.agents.guardian import GuardState


def test_state_tracks_holds_and_deadline():
    s = GuardState()
    assert s.apply("lease 10.5") and s.apply("hold web 198.18.0.100/24 eth0")
    assert not s.expired(10.0) and s.timeout(10.0) == pytest.approx(0.5)
    assert s.expired(10.5)
    s.apply("release web")
    assert not s.expired(99.0) and s.timeout(99.0) is None
    assert s.apply("bye") is False


def test_hold_without_any_lease_counts_as_expired():
    s = GuardState()
    s.apply("hold web 198.18.0.100/24 eth0")
    assert s.expired(time.monotonic())


@pytest.mark.parametrize("bad", ["hold web", "lease soon", "grab web x y"])
def test_malformed_messages_are_refused(bad: str):
    with pytest.raises(ValueError):
        GuardState().apply(bad)
