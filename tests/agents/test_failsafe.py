"""The failsafe grant rule, promises and the requester's grants (agents/failsafe.py), on a
fake clock: the clauses the safety argument in docs/design.md ("Failsafe") rests on."""

from __future__ import annotations

import pytest

from vnfha.agents.failsafe import (
    Grants,
    GroupView,
    Peer,
    Promises,
    grant,
    quorum_quiet,
)

LEASE = 1.0
A = Peer("web-1", "vm1", "198.18.0.11:7701", active=True)
B = Peer("web-2", "vm2", "198.18.0.12:7701")
C = Peer("web-3", "vm3", "198.18.0.13:7701")


def view(me: str = "web-2", active: str = "web-1", epoch: int = 3,
         lease: float = LEASE) -> GroupView:
    return GroupView(group="web", member=me, epoch=epoch, active=active, lease=lease,
                     peers=(A, B, C))


def ask(v: GroupView | None, caller: str = "vm1", requester: str = "web-1",
        epoch: int = 3, quorum: bool = False, acting: bool = False):
    return grant(v, caller_node=caller, requester=requester, epoch=epoch,
                 hears_quorum=quorum, acting_active=acting)


def test_grants_the_active_it_knows_when_it_hears_no_quorum():
    v = ask(view())
    assert v.granted and v.lease == LEASE


@pytest.mark.parametrize("kw, why", [
    ({"quorum": True}, "hears a coordinator quorum"),
    ({"caller": "vm3"}, "not the node hosting"),
    ({"caller": ""}, "not the node hosting"),
    ({"epoch": 2}, "not the active at epoch 2"),
    ({"epoch": 4}, "not the active at epoch 4"),
    ({"requester": "web-3", "caller": "vm3"}, "not the active"),
    ({"requester": "web-9"}, "not a member"),
    ({"acting": True}, "active itself"),
])
def test_refuses(kw, why):
    v = ask(view(), **kw)
    assert not v.granted and why in v.reason and v.lease == 0


def test_refuses_when_off_unknown_or_itself_active():
    assert "off" in ask(view(lease=0)).reason
    assert not ask(None).granted
    # The granter's own last assignment names itself active: never grant.
    assert "active itself" in ask(view(active="web-2"), requester="web-2", caller="vm2").reason


def test_promise_blocks_claims_until_it_ends_even_if_promoted():
    p = Promises(started=-100.0)
    assert p.blocks("web", 0.0, LEASE) is None
    end = p.promise("web", 10.0, LEASE)
    assert end == 11.0
    assert p.blocks("web", 10.5, LEASE) == 11.0
    assert p.blocks("web", 10.999, LEASE) == 11.0
    assert p.blocks("web", 11.0, LEASE) is None
    assert p.blocks("other", 10.5, LEASE) is None
    # A later promise extends; an earlier-ending one never shortens.
    p.promise("web", 10.8, LEASE)
    assert p.blocks("web", 11.5, LEASE) == 11.8
    p.promise("web", 10.1, 0.1)
    assert p.blocks("web", 11.5, LEASE) == 11.8


def test_a_restarted_agent_claims_nothing_for_one_lease():
    """Promises live in memory: after a restart the agent may have promised one lease
    before it started, so it waits one lease, but only where failsafe is on."""
    p = Promises(started=50.0)
    assert p.blocks("web", 50.5, LEASE) == 51.0
    assert p.blocks("web", 51.0, LEASE) is None
    assert p.blocks("web", 50.5, 0.0) is None


def test_grants_count_from_sending_minus_drift_and_margin_and_need_every_peer():
    g = Grants(drift=0.01, margin=0.05)
    peers = frozenset({"web-2", "web-3"})
    g.granted("web", 3, "web-2", sent=10.0, lease=LEASE)
    assert g.until("web", 3, peers) is None, "one peer has not granted"
    assert not g.holds("web", 3, peers, 10.1)
    g.granted("web", 3, "web-3", sent=10.2, lease=LEASE)
    # web-2's grant, sent first, ends first: 10 + 0.99 - 0.05.
    assert g.until("web", 3, peers) == pytest.approx(10.94)
    assert g.holds("web", 3, peers, 10.93)
    assert not g.holds("web", 3, peers, 10.94)
    # The requester's view always ends before the granter's promise (granted on receipt,
    # which is after sending): a granter receiving at 10.0 promises until 11.0.
    assert g.until("web", 3, peers) < 10.0 + LEASE
    # Grants are per epoch: a new epoch holds nothing.
    assert g.until("web", 4, peers) is None


def test_a_refusal_adds_nothing_but_the_earlier_grant_still_binds_until_its_end():
    """The granter's promise from the earlier grant runs to the same end whatever it
    answers later, so the requester may count it until then, never longer."""
    g = Grants()
    peers = frozenset({"web-2"})
    g.granted("web", 3, "web-2", sent=0.0, lease=LEASE)
    end = g.until("web", 3, peers)
    assert end is not None and g.holds("web", 3, peers, 0.1)
    g.refused("web", 3, "web-2")
    assert g.until("web", 3, peers) == end and g.holds("web", 3, peers, 0.1)
    assert not g.holds("web", 3, peers, end)


def test_a_refusal_before_any_grant_means_no_failsafe():
    g = Grants()
    g.refused("web", 3, "web-2")
    assert not g.holds("web", 3, frozenset({"web-2"}), 0.0)


def test_no_other_member_means_no_failsafe():
    assert Grants().until("web", 3, frozenset()) is None


def test_renewal_is_due_well_before_expiry():
    g = Grants(drift=0.0, margin=0.0)
    peers = frozenset({"web-2"})
    assert g.due("web", 3, peers, 0.0, LEASE)
    g.granted("web", 3, "web-2", sent=0.0, lease=LEASE)
    assert not g.due("web", 3, peers, 0.2, LEASE)
    assert g.due("web", 3, peers, 0.34, LEASE)


def test_clear_forgets_every_epoch_of_a_group():
    g = Grants()
    g.granted("web", 3, "web-2", sent=0.0, lease=LEASE)
    g.granted("db", 3, "db-2", sent=0.0, lease=LEASE)
    g.clear("web")
    assert g.until("web", 3, frozenset({"web-2"})) is None
    assert g.until("db", 3, frozenset({"db-2"})) is not None


def test_quorum_quiet():
    span, interval = 0.2, 0.06
    assert quorum_quiet(None, 5.0, span, interval)
    assert quorum_quiet(4.9, 5.0, span, interval), "lease over"
    # Extended just now (deadline = now + span): not quiet.
    assert not quorum_quiet(5.0 + span, 5.0, span, interval)
    # Last extended 0.1 s ago: quiet after one interval, not after two.
    assert quorum_quiet(5.1, 5.0, span, interval, rounds=1)
    assert not quorum_quiet(5.1, 5.0, span, interval, rounds=2)
    assert quorum_quiet(5.0 + span - 0.13, 5.0, span, interval, rounds=2)
    # The granter's default: 1.5 intervals (0.09 s here).
    assert not quorum_quiet(5.0 + span - 0.08, 5.0, span, interval)
    assert quorum_quiet(5.0 + span - 0.1, 5.0, span, interval)
