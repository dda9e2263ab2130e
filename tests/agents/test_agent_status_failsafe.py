"""`vnfha agent status` while failsafe keeps an active (issue 16): the pure document
builder and its text form, from fixed values."""

from __future__ import annotations

from vnfha.agents.status import FailsafeGroup, FailsafeState, build_status
from vnfha.coordinator.cli import format_agent_status


def doc(fs: FailsafeState | None) -> dict:
    return build_status(node="vm1", pid=1, uptime=5.0, lease_remaining=None, quorum=2,
                        cluster_size=3, announced=[], links=[], members=[],
                        assignment_revision=7, failed=None, blocked={}, guardian="running",
                        kernel_lease="on", vip_managed=True, failsafe=fs)


ENGAGED = FailsafeState(listener="198.18.0.11:7701", off_reason="", granted=2, refused=1,
                        groups=(FailsafeGroup("web", 1.0, True, 3, ("web-2", "web-3"), 0.6234),
                                FailsafeGroup("db", 1.0, False)))


def test_an_engaged_group_shows_its_epoch_grantors_and_time_left():
    d = doc(ENGAGED)
    assert d["failsafe"] == {
        "listener": "198.18.0.11:7701", "no_listener_reason": None,
        "answered": {"granted": 2, "refused": 1},
        "groups": [{"group": "web", "lease_seconds": 1.0, "engaged": True, "epoch": 3,
                    "grantors": ["web-2", "web-3"], "remaining_seconds": 0.623},
                   {"group": "db", "lease_seconds": 1.0, "engaged": False, "epoch": None,
                    "grantors": [], "remaining_seconds": None}]}
    text = format_agent_status(d).splitlines()
    assert "NOT HELD" in text[0]
    assert "failsafe: listener 198.18.0.11:7701; answered 2 granted, 1 refused" in text
    assert ("failsafe ENGAGED web: active at epoch 3 on grants from web-2, web-3, 0.62s "
            "left (no coordinator quorum)") in text
    assert "failsafe db: on (lease 1.0s), not engaged" in text


def test_no_listener_says_why_and_an_older_agent_shows_no_failsafe_lines():
    off = FailsafeState(listener="", off_reason="failsafe.port is 0 in the config",
                        groups=(FailsafeGroup("web", 0.0, False),))
    text = format_agent_status(doc(off))
    assert "failsafe: listener none (failsafe.port is 0 in the config)" in text
    assert "failsafe web: off" in text
    older = doc(None)
    assert "failsafe" not in older and "failsafe" not in format_agent_status(older).replace(
        "fail-safe", "")
