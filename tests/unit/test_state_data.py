"""Checkpoints and queues in the replicated state machine: fenced on the current epoch,
size-limited, bounded retention; a refusal changes nothing; snapshots carry them."""

from __future__ import annotations

import json
from base64 import b64encode

from cluster_builders import GROUP, build, run

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import ClusterState, Health, state_from_dict, state_to_dict
from vnfha.coordinator.service.feed import OnlyRoleChanges
from vnfha.coordinator.state_machine import StateMachine, apply


def b64(data: bytes) -> str:
    return b64encode(data).decode()


def pub(epoch: int, data: bytes = b"m", group: str = GROUP, max_msg: int = 100,
        keep: int = 3, keep_bytes: int = 1000) -> dict:
    return C.publish(group, epoch, b64(data), max_message_bytes=max_msg, retain_messages=keep,
                     retain_bytes=keep_bytes)


def cp(epoch: int, data: bytes = b"state", seq: int = 7, group: str = GROUP,
       limit: int = 100) -> dict:
    return C.put_checkpoint(group, epoch, b64(data), sync_sequence=seq, max_bytes=limit)


def refused(state: ClusterState, cmd: dict, code: str) -> str:
    new, result = apply(state, cmd)
    assert result == {"ok": False, "error": code, "message": result["message"]}, result
    assert new is state  # nothing applied, not even the revision
    return result["message"]


def failed_over() -> ClusterState:
    """`a` active at epoch 1, then replaced by `b` at epoch 2."""
    st = build(active="a")
    return run(st, C.promote(GROUP, "b", 1, reason="a lost") | {"replace": "a"})


def test_checkpoint_written_at_current_epoch_and_versioned():
    st = build(active="a")
    st, r1 = apply(st, cp(1, b"one", seq=3))
    st, r2 = apply(st, cp(1, b"two", seq=9))
    assert (r1, r2) == ({"ok": True, "version": 1}, {"ok": True, "version": 2})
    c = st.checkpoints[GROUP]
    assert (c.epoch, c.version, c.data, c.sync_sequence) == (1, 2, b"two", 9)


def test_deposed_active_cannot_write_checkpoint_or_publish():
    st = failed_over()
    assert "deposed" in refused(st, cp(1), "stale_epoch")
    assert "deposed" in refused(st, pub(1), "stale_epoch")
    st, r = apply(st, cp(2))
    assert r["ok"] and st.checkpoints[GROUP].epoch == 2


def test_forged_future_epoch_is_refused():
    st = build(active="a")
    assert "forged" in refused(st, cp(5), "future_epoch")
    assert "forged" in refused(st, pub(2), "future_epoch")


def test_no_write_without_an_active_at_that_epoch():
    st = build(active="a")
    st = run(st, C.demote(GROUP, 1, reason="test"))  # epoch 2, nobody active
    refused(st, cp(2), "no_active")
    refused(st, pub(2), "no_active")
    refused(st, cp(1), "stale_epoch")


def test_oversize_and_malformed_writes_are_refused():
    st = build(active="a")
    assert "limit is 100" in refused(st, cp(1, b"x" * 101), "too_large")
    refused(st, pub(1, b"x" * 101), "too_large")
    refused(st, cp(1) | {"data": "not base64!"}, "invalid")
    refused(st, cp(1, group="nope"), "unknown_group")
    refused(st, cp(0), "invalid")
    refused(st, pub(1, max_msg=0), "invalid")
    refused(st, cp(1) | {"epoch": "1"}, "invalid")


def test_queue_offsets_and_bounded_retention():
    st = build(active="a")
    for i in range(5):
        st, r = apply(st, pub(1, f"m{i}".encode()))
        assert r == {"ok": True, "offset": i}
    q = st.queues[GROUP]
    assert [m.data for m in q.messages] == [b"m2", b"m3", b"m4"]  # keep=3
    assert (q.first_offset, q.next_offset, q.size) == (2, 5, 6)
    st, _ = apply(st, pub(1, b"y" * 10, keep=10, keep_bytes=12))  # byte bound
    q = st.queues[GROUP]
    assert [m.offset for m in q.messages] == [4, 5] and q.size == 12


def test_data_writes_add_no_events_and_keep_role_state_identical():
    st = build(active="a")
    new, _ = apply(st, pub(1))
    new, _ = apply(new, cp(1))
    assert new.events is st.events and new.groups is st.groups and new.nodes is st.nodes
    assert new.revision == st.revision + 2


def test_role_change_filter_passes_role_changes_only():
    calls: list[int] = []
    current = [build(active="a")]
    listener = OnlyRoleChanges(lambda: current[0], lambda: calls.append(1))
    listener()  # first call always passes
    for cmd in (pub(1), cp(1), pub(1)):
        current[0], r = apply(current[0], cmd)
        assert r["ok"]
        listener()
    assert len(calls) == 1 and listener.suppressed == 3
    current[0] = run(current[0], C.demote(GROUP, 1, reason="test"))
    listener()
    assert len(calls) == 2


def test_snapshot_round_trip_carries_checkpoints_and_queues():
    sm = StateMachine()
    for cmd in (*_build_cmds(), cp(1, b"\x00\xffbin"), pub(1, b"a"), pub(1, b"b")):
        assert sm.apply(cmd)["ok"], cmd
    snap = json.loads(json.dumps(sm.snapshot()))  # what the raft layer does
    other = StateMachine()
    other.restore(snap)
    assert other.state == sm.state
    assert other.state.checkpoints[GROUP].data == b"\x00\xffbin"
    assert state_from_dict(state_to_dict(sm.state)).queues[GROUP].size == 2


def test_retried_write_applies_once():
    sm = StateMachine()
    for cmd in _build_cmds():
        sm.apply(cmd)
    cmd = pub(1)
    first, again = sm.apply(cmd), sm.apply(cmd)
    assert first == {"ok": True, "offset": 0} and again["duplicate"] is True
    assert sm.state.queues[GROUP].next_offset == 1


def _build_cmds() -> list[dict]:
    return [C.apply_groups([{"name": GROUP}]),
            C.register_node("n1", "198.18.1.1", [{"group": GROUP, "member": "a"}]),
            C.set_health(GROUP, "a", Health.HEALTHY),
            C.promote(GROUP, "a", 0, reason="test")]
