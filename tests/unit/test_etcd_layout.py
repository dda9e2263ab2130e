"""The etcd key layout, pure: what a command writes, and reading it back."""

from __future__ import annotations

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import MAX_EVENTS, Health, state_to_dict
from vnfha.coordinator.state_machine import DEDUP_WINDOW, StateMachine
from vnfha.coordinator.store.etcd_layout import (
    EVENTS_PER_BLOCK,
    Keys,
    Mirror,
    evictions,
    prefix_end,
    write_ops,
)

KEYS = Keys("/t")


def replay(n: int) -> tuple[StateMachine, dict[bytes, tuple[bytes, int]]]:
    """Apply n commands to a StateMachine and their write_ops to a fake keyspace
    (key -> (value, create revision))."""
    sm = StateMachine()
    kv: dict[bytes, tuple[bytes, int]] = {}
    rids: dict[str, dict] = {}
    cmds = [C.apply_groups([{"name": "g"}]),
            C.register_node("n1", "198.18.1.1", [{"group": "g", "member": "a"}])]
    cmds += [C.set_health("g", "a", Health.HEALTHY if i % 2 else Health.UNHEALTHY)
             for i in range(n)]
    for rev, cmd in enumerate(cmds, start=1):
        before = sm.state
        evict = evictions(rids)
        result = sm.apply(cmd)
        ops = write_ops(KEYS, before, sm.state, cmd["rid"], result, evict)
        for k, v in ops.puts.items():
            kv[k] = (v, kv[k][1] if k in kv else rev)
        for k in ops.deletes:
            kv.pop(k, None)
        for r in evict:
            rids.pop(r)
        rids[cmd["rid"]] = result
    return sm, kv


def load(kv: dict[bytes, tuple[bytes, int]]) -> Mirror:
    m = Mirror(KEYS)
    m.load([(k, v, c, c, 0) for k, (v, c) in kv.items()], revision=10**6)
    return m


def test_written_keys_read_back_to_the_same_state_and_request_memory():
    sm, kv = replay(1500)  # more events than MAX_EVENTS: old blocks are deleted
    m = load(kv)
    assert state_to_dict(m.state) == state_to_dict(sm.state)
    assert len(m.state.events) == MAX_EVENTS
    blocks = [k for k in kv if KEYS.classify(k)[0] == "events"]
    assert len(blocks) <= MAX_EVENTS // EVENTS_PER_BLOCK + 1
    assert list(m.rids) == [r for r, _ in sm.snapshot()["recent"]]


def test_request_table_stays_within_the_state_machine_window():
    rids = {f"r{i}": {"ok": True} for i in range(DEDUP_WINDOW)}
    assert evictions(rids) == ("r0",)
    assert evictions({"x": {}}) == ()


def test_one_command_writes_the_state_and_only_what_changed():
    sm, _ = replay(10)
    before = sm.state
    cmd = C.set_health("g", "a", Health.UNHEALTHY, reason="x")
    if before.groups["g"].members["a"].health == Health.UNHEALTHY:
        cmd = C.set_health("g", "a", Health.HEALTHY)
    result = sm.apply(cmd)
    ops = write_ops(KEYS, before, sm.state, cmd["rid"], result)
    assert set(ops.puts) == {KEYS.state, KEYS.event_block(sm.state.events[-1].seq
                                                         // EVENTS_PER_BLOCK), KEYS.rid(cmd["rid"])}
    assert ops.deletes == ()


def test_watch_events_at_or_below_the_mirror_revision_are_ignored_but_leader_is_tracked():
    _, kv = replay(3)
    m = load(kv)
    rev = m.revision
    assert m.apply_event(True, KEYS.state, b"{}", 1, rev, 0) is False  # already in
    m.apply_event(True, KEYS.leader, b'{"node": "c2", "lease": 7}', rev + 1, rev + 1, 7)
    assert m.leader is not None and m.leader.node == "c2"
    m.apply_event(False, KEYS.leader, b"", 0, rev + 2, 0)
    assert m.leader is None


def test_prefix_end_and_classify():
    assert prefix_end(b"/t/") == b"/t0"
    assert KEYS.classify(b"/t/rids/abc") == ("rids", "abc")
    assert KEYS.classify(b"/t/events/0000000001") == ("events", "0000000001")
    assert KEYS.classify(b"/other/state")[0] == "other"


def _data_history() -> tuple[StateMachine, list]:
    """A group with an active, then queue publishes past retention and checkpoints,
    then a role-only change; returns the machine and each command's (before, after,
    ops)."""
    from base64 import b64encode

    def b64(text: str) -> str:
        return b64encode(text.encode()).decode()

    sm = StateMachine()
    cmds = [C.apply_groups([{"name": "g"}]),
            C.register_node("n1", "198.18.1.1", [{"group": "g", "member": "a"}]),
            C.set_health("g", "a", Health.HEALTHY),
            C.promote("g", "a", expect_epoch=0, reason="test")]
    cmds += [C.publish("g", 1, b64(f"m{i}"), 100, 3, 1000) for i in range(5)]
    cmds += [C.put_checkpoint("g", 1, b64("cp1"), 3, 100),
             C.put_checkpoint("g", 1, b64("cp2" * 20), 4, 100),
             C.set_health("g", "a", Health.UNHEALTHY)]
    steps = []
    for cmd in cmds:
        before = sm.state
        result = sm.apply(cmd)
        assert result["ok"], result
        steps.append((cmd, before, sm.state, write_ops(KEYS, before, sm.state, cmd["rid"],
                                                        result)))
    return sm, steps


def test_checkpoints_and_queue_messages_live_in_their_own_keys_and_read_back():
    sm, steps = _data_history()
    kv: dict[bytes, tuple[bytes, int]] = {}
    watched = Mirror(KEYS)
    for rev, (_, _, _, ops) in enumerate(steps, start=1):
        for k, v in ops.puts.items():
            kv[k] = (v, kv[k][1] if k in kv else rev)
            watched.apply_event(True, k, v, kv[k][1], rev, 0)
        for k in ops.deletes:
            kv.pop(k, None)
            watched.apply_event(False, k, b"", 0, rev, 0)
        watched.advance(rev)
    # Retention 3 of 5 published: offsets 0 and 1 were deleted from etcd.
    queue_keys = sorted(k for k in kv if KEYS.classify(k)[0] == "queue")
    assert queue_keys == [KEYS.message("g", off) for off in (2, 3, 4)]
    assert b"cp1" not in kv[KEYS.checkpoint("g")][0]  # replaced by the second write
    for mirror in (load(kv), watched):
        assert state_to_dict(mirror.state) == state_to_dict(sm.state)
        assert mirror.state.queues["g"].next_offset == 5
        assert mirror.state.checkpoints["g"].data == b"cp2" * 20
    # The state key carries neither checkpoint bytes nor messages.
    assert b"checkpoints" not in kv[KEYS.state][0]
    assert b"bTA" not in kv[KEYS.state][0] and b"Y3Ay" not in kv[KEYS.state][0]


def test_a_role_change_does_not_rewrite_checkpoint_or_queue_keys():
    _, steps = _data_history()
    cmd, _, _, ops = steps[-1]
    assert cmd["op"] == "set_health"
    kinds = {KEYS.classify(k)[0] for k in ops.puts} | {KEYS.classify(k)[0] for k in ops.deletes}
    assert kinds <= {"state", "events", "rids"}
    publish_ops = [ops for cmd, _, _, ops in steps if cmd["op"] == "publish"]
    assert all(sum(KEYS.classify(k)[0] == "queue" for k in o.puts) == 1 for o in publish_ops)
