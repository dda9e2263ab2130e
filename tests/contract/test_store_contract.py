"""The `Store` contract (coordinator/store/base.py), run against every backend.

Each test takes the `store` fixture (see conftest.py: one param per backend).
Nothing here knows which backend it talks to.
"""

from __future__ import annotations

import threading
import time

import pytest

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import Health, state_to_dict
from vnfha.coordinator.state_machine import StateMachine
from vnfha.coordinator.store.base import Store, StoreUnavailable

GROUP = "g"
WAIT = 5.0  # upper bound for anything that should be prompt; never reached when green


def setup_commands() -> list[dict]:
    """Group g with members a (n1, prio 100), b (n2, 90), c (n3, 80), all healthy."""
    cmds = [C.apply_groups([{"name": GROUP, "vip": "198.18.0.10/24"}])]
    for i, (m, prio) in enumerate((("a", 100), ("b", 90), ("c", 80)), start=1):
        cmds.append(C.register_node(f"n{i}", f"198.18.1.{i}",
                                    [{"group": GROUP, "member": m, "priority": prio}]))
    cmds += [C.set_health(GROUP, m, Health.HEALTHY) for m in ("a", "b", "c")]
    return cmds


def seed(store: Store) -> None:
    for cmd in setup_commands():
        r = store.submit(cmd)
        assert r["ok"], (cmd, r)


def epoch(store: Store) -> int:
    return store.state().groups[GROUP].epoch


def test_submit_returns_the_state_machine_result(store):
    """Same commands into the store and into a bare StateMachine: same results, same state."""
    ref = StateMachine()
    script = [
        *setup_commands(),
        C.promote(GROUP, "a", 0, reason="election"),
        C.promote(GROUP, "b", 0, reason="stale"),  # stale_epoch
        C.promote(GROUP, "zz", 1, reason="t"),  # unknown_member
        C.switchover(GROUP, "c"),
        C.promote(GROUP, "c", 2, reason="too early"),  # conflict: a has not released
        C.confirm_release(GROUP, "a", 2, reason="agent confirmed"),
        C.promote(GROUP, "c", 2, reason="planned switchover"),
        C.set_maintenance("n9", True),  # unknown_node
        C.set_health(GROUP, "a", Health.HEALTHY),  # no change
    ]
    for cmd in script:
        got = store.submit(cmd)
        want = ref.apply(cmd)
        assert got == want, cmd
    assert store.state().revision == ref.state.revision
    assert state_to_dict(store.state()) == state_to_dict(ref.state)
    assert store.state().groups[GROUP].active == "c" and epoch(store) == 3


def test_state_sync_data_is_fenced_and_kept_like_any_state(store):
    """Queue and checkpoint writes go through the same store (etcd keeps them in their
    own keys): the same results and state as a bare StateMachine, stale and forged
    epochs refused, retention applied."""
    from base64 import b64encode

    def b64(text: str) -> str:
        return b64encode(text.encode()).decode()

    ref = StateMachine()
    script = [*setup_commands(), C.promote(GROUP, "a", 0, reason="election")]
    script += [C.publish(GROUP, 1, b64(f"m{i}"), 100, 3, 1000) for i in range(5)]
    script += [C.put_checkpoint(GROUP, 1, b64("cp"), 4, 100),
               C.switchover(GROUP, "b"),
               C.confirm_release(GROUP, "a", 2, reason="agent confirmed"),
               C.promote(GROUP, "b", 2, reason="planned switchover"),
               C.publish(GROUP, 1, b64("late"), 100, 3, 1000),  # deposed: stale_epoch
               C.put_checkpoint(GROUP, 9, b64("x"), 0, 100),  # forged: future_epoch
               C.put_checkpoint(GROUP, 3, b64("cp-b"), 5, 100)]
    for cmd in script:
        got = store.submit(cmd)
        assert got == ref.apply(cmd), cmd
    assert [r.get("error") for r in (store.submit(script[-3]), store.submit(script[-2]))] \
        == ["stale_epoch", "future_epoch"]  # resubmits of the same rids: same answers
    st = store.state()
    assert [m.data for m in st.queues[GROUP].messages] == [b"m2", b"m3", b"m4"]
    assert st.checkpoints[GROUP].data == b"cp-b" and st.checkpoints[GROUP].epoch == 3
    assert state_to_dict(st) == state_to_dict(ref.state)


def test_refusals_leave_state_unchanged(store):
    seed(store)
    assert store.submit(C.promote(GROUP, "a", 0, reason="t"))["ok"]
    before = store.state()
    snapshot = state_to_dict(before)
    refusals = [
        (C.promote(GROUP, "b", 0, reason="stale"), "stale_epoch"),
        (C.promote(GROUP, "b", 1, reason="active exists"), "conflict"),
        (C.demote("nope", 1, reason="t"), "unknown_group"),
        (C.set_health(GROUP, "zz", Health.HEALTHY), "unknown_member"),
        (C.set_maintenance("n9", True), "unknown_node"),
        (C.switchover(GROUP, "a"), "conflict"),
        ({**C.promote(GROUP, "b", 1, reason="t"), "expect_epoch": True}, "invalid"),
        ({"op": "promote", "group": GROUP}, "invalid"),  # no rid
        ({"op": "elect", "rid": C.new_rid()}, "invalid"),
        ("promote b", "invalid"),
    ]
    for cmd, code in refusals:
        r = store.submit(cmd)
        assert r["ok"] is False and r["error"] == code, (cmd, r)
        assert store.state().revision == before.revision
    assert state_to_dict(store.state()) == snapshot


def test_revision_increases_by_one_per_applied_change(store):
    seen = [store.state().revision]
    cmds = [*setup_commands(), C.promote(GROUP, "b", 0, reason="t"),
            C.promote(GROUP, "c", 0, reason="stale"), C.demote(GROUP, 1, reason="t")]
    for cmd in cmds:
        r = store.submit(cmd)
        # Read-your-writes on the store that answered: the result's state is visible.
        rev = store.state().revision
        assert rev == seen[-1] + (1 if r["ok"] else 0), (cmd, r)
        seen.append(rev)
    assert seen == sorted(seen)
    assert seen[-1] == seen[0] + len(cmds) - 1


def test_same_rid_applies_once(store):
    seed(store)
    cmd = C.promote(GROUP, "a", 0, reason="t")
    first = store.submit(cmd)
    assert first["ok"] and first["epoch"] == 1
    rev = store.state().revision
    again = store.submit(dict(cmd))
    assert again["ok"] is True and again["epoch"] == 1 and again.get("duplicate") is True
    assert store.state().revision == rev and epoch(store) == 1


def test_same_rid_with_another_command_is_refused(store):
    """A request id is bound to what it requested: reused for a different command it is
    refused (never answered with the first command's result), and the first command's
    retry still gets its recorded result."""
    seed(store)
    first = C.set_maintenance("n3", True, rid="contract-rid-1")
    assert store.submit(first) == {"ok": True, "changed": True}
    rev = store.state().revision
    other = C.set_maintenance("n2", True, rid="contract-rid-1")
    r = store.submit(other)
    assert r["ok"] is False and r["error"] == "request_id_reused", r
    assert store.state().nodes["n2"].maintenance is False
    retry = store.submit({**first, "at": first["at"] + 1.0})
    assert retry["ok"] is True and retry.get("duplicate") is True
    assert store.state().revision == rev


def test_same_rid_from_two_threads_applies_once(store):
    seed(store)
    cmd = C.set_maintenance("n3", True)
    rev = store.state().revision
    results: list[dict] = []
    barrier = threading.Barrier(2)

    def go() -> None:
        barrier.wait()
        results.append(store.submit(dict(cmd)))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(results) == 2 and all(r["ok"] for r in results)
    # Applied once. (Whether the second caller sees duplicate=True or shares the first
    # caller's result is the backend's choice.)
    assert store.state().revision == rev + 1
    assert [{k: v for k, v in r.items() if k != "duplicate"} for r in results] == [
        {"ok": True, "changed": True}] * 2


def _race_promotes(store: Store, members: tuple[str, ...], expect: int) -> dict[str, dict]:
    """Submit one promote per member, all with the same expect_epoch, at once."""
    results: dict[str, dict] = {}
    barrier = threading.Barrier(len(members))

    def go(member: str) -> None:
        barrier.wait()
        results[member] = store.submit(C.promote(GROUP, member, expect, reason="race"))

    threads = [threading.Thread(target=go, args=(m,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(results) == len(members)
    return results


def test_cas_on_epoch_two_racing_promotes(store):
    seed(store)
    for rnd in range(10):
        e = epoch(store)
        results = _race_promotes(store, ("b", "c"), e)
        winners = [m for m, r in results.items() if r["ok"]]
        assert len(winners) == 1, (rnd, results)
        loser = results[{"b": "c", "c": "b"}[winners[0]]]
        assert loser["error"] in ("stale_epoch", "conflict"), loser
        g = store.state().groups[GROUP]
        assert g.active == winners[0] and g.epoch == e + 1
        assert results[winners[0]]["epoch"] == e + 1
        # Back to no active for the next round.
        assert store.submit(C.demote(GROUP, e + 1, reason="reset"))["ok"]
        assert store.submit(C.confirm_release(GROUP, winners[0], e + 2, reason="reset"))["ok"]


def test_wait_for_change_returns_promptly_after_a_change(store):
    seed(store)
    rev = store.state().revision
    got: list = []

    def waiter() -> None:
        t0 = time.monotonic()
        st = store.wait_for_change(rev, timeout=WAIT)
        got.append((st.revision, time.monotonic() - t0))

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)  # let the waiter block first
    submitted = time.monotonic()
    assert store.submit(C.set_maintenance("n1", True))["ok"]
    t.join(WAIT)
    assert got, "waiter did not return"
    revision, waited = got[0]
    assert revision == rev + 1
    assert waited < WAIT / 2
    assert time.monotonic() - submitted < 1.0


def test_wait_for_change_times_out_without_a_change(store):
    seed(store)
    rev = store.state().revision
    t0 = time.monotonic()
    st = store.wait_for_change(rev, timeout=0.2)
    waited = time.monotonic() - t0
    assert st.revision == rev
    assert 0.2 <= waited < 1.5
    # A refused command is not a change either.
    store.submit(C.promote(GROUP, "a", 99, reason="stale"))
    assert store.wait_for_change(rev, timeout=0.05).revision == rev


def test_wait_for_change_returns_at_once_if_already_newer(store):
    seed(store)
    t0 = time.monotonic()
    st = store.wait_for_change(0, timeout=WAIT)
    assert st.revision > 0 and time.monotonic() - t0 < 0.5


def test_listeners_called_after_a_change(store):
    seed(store)
    called = threading.Event()
    store.add_listener(called.set)
    assert store.submit(C.set_maintenance("n2", True))["ok"]
    assert called.wait(WAIT)


def test_state_never_goes_backwards_under_concurrent_writes(store):
    seed(store)
    stop = threading.Event()
    revisions: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            revisions.append(store.state().revision)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(50):
            assert store.submit(C.set_maintenance("n3", i % 2 == 0))["ok"]
    finally:
        stop.set()
        t.join(WAIT)
    assert revisions == sorted(revisions)
    assert len(revisions) > 1


def test_leadership_facts_are_consistent(store):
    assert store.is_leader() is True
    since, contact = store.leader_since(), store.quorum_contact()
    now = time.monotonic()
    assert since is not None and contact is not None
    assert since <= now and contact <= now
    assert store.leader_id()
    assert isinstance(store.describe(), dict)
    # quorum contact keeps up with time while leading
    time.sleep(0.01)
    later = store.quorum_contact()
    assert later is not None and later >= contact


def test_stop_then_submit_is_unavailable(store):
    seed(store)
    rev = store.state().revision
    store.stop()
    with pytest.raises(StoreUnavailable):
        store.submit(C.set_maintenance("n1", True))
    assert store.is_leader() is False
    assert store.leader_since() is None and store.quorum_contact() is None
    assert store.state().revision == rev
    store.stop()  # safe to call twice


def test_submit_as_leader_applies_like_submit_on_the_leader(store):
    seed(store)
    ref = StateMachine()
    for cmd in setup_commands():
        ref.apply(cmd)
    cmd = C.promote(GROUP, "a", 0, reason="leader decision")
    assert store.submit_as_leader(cmd) == ref.apply(cmd)
    assert epoch(store) == 1 and store.state().groups[GROUP].active == "a"
    again = store.submit_as_leader(dict(cmd))  # same rid: applied once
    assert again["ok"] and again.get("duplicate") is True and epoch(store) == 1
    refused = store.submit_as_leader(C.promote(GROUP, "b", 0, reason="stale"))
    assert refused["ok"] is False and refused["error"] == "stale_epoch"


def test_submit_as_leader_after_stop_is_unavailable(store):
    seed(store)
    rev = store.state().revision
    store.stop()
    with pytest.raises(StoreUnavailable):
        store.submit_as_leader(C.promote(GROUP, "a", 0, reason="t"))
    assert store.state().revision == rev


def test_a_running_leader_reaches_its_store(store):
    assert store.store_reachable() is True


def test_a_batch_commits_every_item_as_one_entry_or_nothing(store):
    """One decide round is one entry (commands.batch): all items apply, in order, at one
    point of the order every replica sees, each with its own epoch check; if any is
    refused none applies. Whatever the backend, the batch is the state machine's."""
    seed(store)
    e = epoch(store)
    assert store.submit(C.promote(GROUP, "a", e, reason="setup"))["ok"]
    rev = store.state().revision
    stale = C.batch([C.set_health(GROUP, "c", Health.UNHEALTHY),
                     C.promote(GROUP, "b", e, reason="stale") | {"replace": "a"}])
    r = store.submit_as_leader(stale)
    assert r["ok"] is False and r["error"] == "stale_epoch", r
    st = store.state()
    assert st.revision == rev and st.groups[GROUP].active == "a"
    assert st.groups[GROUP].members["c"].health == Health.HEALTHY  # item 0 not applied
    fresh = C.batch([C.set_health(GROUP, "c", Health.UNHEALTHY),
                     C.promote(GROUP, "b", e + 1, reason="a lost") | {"replace": "a"}])
    r = store.submit_as_leader(fresh)
    assert r["ok"] is True and r["items"] == 2, r
    st = store.state()
    assert st.revision == rev + 1
    g = st.groups[GROUP]
    assert (g.active, g.epoch, g.members["c"].health) == ("b", e + 2, Health.UNHEALTHY)
    assert store.submit(fresh).get("duplicate") is True  # a retry applies once
    assert store.state().revision == rev + 1
