"""The etcd key layout, pure: what a command writes, and reading it back."""

from __future__ import annotations

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import MAX_EVENTS, Health, state_to_dict
from vnfha.coordinator.state_machine import DEDUP_WINDOW, StateMachine
from vnfha.coordinator.store.etcd_layout import (
    EVENTS_PER_BLOCK,
    LEGACY_EVENTS_PER_BLOCK,
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
        ops = write_ops(KEYS, before, sm.state, cmd["rid"], result, evict, create=rev == 1)
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
    blocks = [k for k in kv if KEYS.classify(k)[0] == "history"]
    assert len(blocks) <= MAX_EVENTS // EVENTS_PER_BLOCK + 1
    assert list(m.rids) == [r for r, _ in sm.snapshot()["recent"]]


def test_request_table_stays_within_the_state_machine_window():
    rids = {f"r{i}": {"ok": True} for i in range(DEDUP_WINDOW)}
    assert evictions(rids) == ("r0",)
    assert evictions({"x": {}}) == ()


def test_one_command_writes_the_cluster_record_and_only_what_changed():
    sm, _ = replay(10)
    before = sm.state
    cmd = C.set_health("g", "a", Health.UNHEALTHY, reason="x")
    if before.groups["g"].members["a"].health == Health.UNHEALTHY:
        cmd = C.set_health("g", "a", Health.HEALTHY)
    result = sm.apply(cmd)
    ops = write_ops(KEYS, before, sm.state, cmd["rid"], result)
    assert set(ops.puts) == {KEYS.cluster, KEYS.group("g"),
                             KEYS.event_block(sm.state.events[-1].seq // EVENTS_PER_BLOCK),
                             KEYS.rid(cmd["rid"])}
    assert ops.deletes == ()


def test_watch_events_at_or_below_the_mirror_revision_are_ignored_but_leader_is_tracked():
    _, kv = replay(3)
    m = load(kv)
    rev = m.revision
    assert m.apply_event(True, KEYS.cluster, b"{}", 1, rev, 0) is False  # already in
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
    # Only their own keys carry checkpoint bytes and messages.
    for k, (v, _) in kv.items():
        if KEYS.classify(k)[0] not in ("checkpoints", "queue"):
            assert b"bTA" not in v and b"Y3Ay" not in v, k


def test_a_role_change_does_not_rewrite_checkpoint_or_queue_keys():
    _, steps = _data_history()
    cmd, _, _, ops = steps[-1]
    assert cmd["op"] == "set_health"
    kinds = {KEYS.classify(k)[0] for k in ops.puts} | {KEYS.classify(k)[0] for k in ops.deletes}
    assert kinds <= {"cluster", "groups", "history", "rids"}
    publish_ops = [ops for cmd, _, _, ops in steps if cmd["op"] == "publish"]
    assert all(sum(KEYS.classify(k)[0] == "queue" for k in o.puts) == 1 for o in publish_ops)


# -- one key per group and node ----------------------------------------------------------------

def _many_groups(n: int) -> StateMachine:
    sm = StateMachine()
    names = [f"g{i}" for i in range(n)]
    sm.apply(C.apply_groups([{"name": g} for g in names]))
    sm.apply(C.register_node("n1", "198.18.1.1", [{"group": g, "member": "a"} for g in names]))
    sm.apply(C.register_node("n2", "198.18.1.2", [{"group": g, "member": "b"} for g in names]))
    return sm


def test_a_role_change_writes_one_group_key_whatever_the_number_of_groups():
    sm = _many_groups(1000)
    before = sm.state
    cmd = C.set_health("g7", "b", Health.HEALTHY)
    result = sm.apply(cmd)
    ops = write_ops(KEYS, before, sm.state, cmd["rid"], result)
    groups = [k for k in ops.puts if KEYS.classify(k)[0] == "groups"]
    assert groups == [KEYS.group("g7")]
    assert not any(KEYS.classify(k)[0] == "nodes" for k in ops.puts)
    assert ops.size < 2_500  # the cluster record, one group, one history block, one rid


def test_a_replacement_that_changes_nothing_is_not_written():
    sm = _many_groups(3)
    before = sm.state
    # register_node again with the same members replaces objects with equal ones
    cmd = C.register_node("n1", "198.18.1.1", [{"group": f"g{i}", "member": "a"}
                                                for i in range(3)])
    result = sm.apply(cmd)
    ops = write_ops(KEYS, before, sm.state, cmd["rid"], result)
    assert not any(KEYS.classify(k)[0] in ("groups", "nodes") for k in ops.puts)


def test_a_watch_event_replaces_only_its_group_object():
    sm = _many_groups(50)
    kv = {}
    ops = write_ops(KEYS, StateMachine().state, sm.state, None, None, create=True)
    kv = {k: (v, 1) for k, v in ops.puts.items()}
    m = load(kv)
    first = m.state
    before = sm.state
    sm.apply(C.set_health("g3", "a", Health.HEALTHY))
    ops = write_ops(KEYS, before, sm.state, None, None)
    rev = m.revision + 1
    for k, v in ops.puts.items():
        m.apply_event(True, k, v, rev, rev, 0)
    m.advance(rev)
    second = m.state
    assert second.groups["g3"] != first.groups["g3"]
    assert all(second.groups[g] is first.groups[g] for g in first.groups if g != "g3")
    assert state_to_dict(second) == state_to_dict(sm.state)


def test_deleted_groups_and_nodes_delete_their_keys():
    sm = _many_groups(2)
    before = sm.state
    cmd = C.delete_group("g1")
    assert sm.apply(cmd)["ok"]
    ops = write_ops(KEYS, before, sm.state, cmd["rid"], None)
    assert KEYS.group("g1") in ops.deletes


# -- layout 1 (one state key) is read and converted ---------------------------------------------

def _legacy_kv(sm: StateMachine) -> dict[bytes, tuple[bytes, int]]:
    """What layout 1 kept in etcd for `sm`'s state: the state object without events,
    checkpoints and messages in <prefix>/state, the events in blocks."""
    import json

    d = state_to_dict(sm.state)
    d.pop("events")
    d.pop("checkpoints")
    d["queues"] = {g: {"next_offset": q["next_offset"], "messages": []}
                   for g, q in d["queues"].items()}
    kv = {KEYS.state: (json.dumps(d).encode(), 1)}
    for e in d_events(sm):
        block = KEYS.legacy_event_block(e["seq"] // LEGACY_EVENTS_PER_BLOCK)
        old = json.loads(kv[block][0]) if block in kv else []
        kv[block] = (json.dumps([*old, e]).encode(), 1)
    ops = write_ops(KEYS, StateMachine().state, sm.state, None, None)
    kv.update((k, (v, 1)) for k, v in ops.puts.items()
              if KEYS.classify(k)[0] in ("checkpoints", "queue"))
    return kv


def d_events(sm: StateMachine) -> list[dict]:
    return state_to_dict(sm.state)["events"]


def test_layout_1_reads_back_and_converts_to_the_same_state():
    from vnfha.coordinator.store.etcd_layout import CONVERT_CHUNK, STATE_MARKER, conversion_chunks

    sm, _ = _data_history()
    for cmd in (C.apply_groups([{"name": f"x{i}"} for i in range(250)]),
                C.set_paused(True)):
        assert sm.apply(cmd)["ok"]
    kv = _legacy_kv(sm)
    m = load(kv)
    assert m.layout == 1
    assert state_to_dict(m.state) == state_to_dict(sm.state)
    # a group key left by a conversion that did not finish is deleted
    kv[KEYS.group("stale")] = (b'{"mode":"active_standby","vip":"","epoch":0,"active":null,'
                               b'"releasing":null,"releasing_epoch":0,"handover_to":null,'
                               b'"members":{}}', 1)
    m = load(kv)
    chunks = conversion_chunks(KEYS, m)
    assert len(chunks) > 2 and all(c.count <= CONVERT_CHUNK for c in chunks)
    assert chunks[-1].puts[KEYS.state] == STATE_MARKER and KEYS.cluster in chunks[-1].puts
    for c in chunks:
        kv.update((k, (v, 2)) for k, v in c.puts.items())
        for k in c.deletes:
            kv.pop(k)
    converted = load(kv)
    assert converted.layout == 2 and converted.legacy is None
    assert state_to_dict(converted.state) == state_to_dict(sm.state)
    assert converted.state.paused and len(converted.state.groups) == 251
    assert not any(KEYS.classify(k)[0] == "events" for k in kv)  # layout 1's blocks went


def test_a_newer_layout_is_read_but_marked():
    m = Mirror(KEYS)
    m.load([(KEYS.cluster, b'{"layout": 3, "revision": 4}', 1, 1, 0)], revision=1)
    assert m.too_new and m.unreadable


def test_cluster_wide_settings_read_back() -> None:
    """Every cluster-wide field of the state lives in the cluster record: a field left
    out is silently lost on etcd (seen: the failsafe setting, added after layout 2,
    read back as off)."""
    sm = StateMachine()
    kv: dict[bytes, tuple[bytes, int]] = {}
    cmds = [C.apply_groups([{"name": "g"}]), C.set_failsafe(1500), C.set_paused(True)]
    for rev, cmd in enumerate(cmds, start=1):
        before = sm.state
        result = sm.apply(cmd)
        ops = write_ops(KEYS, before, sm.state, cmd["rid"], result, (), create=rev == 1)
        for k, v in ops.puts.items():
            kv[k] = (v, kv[k][1] if k in kv else rev)
    m = load(kv)
    assert (m.state.failsafe_lease_ms, m.state.paused) == (1500, True)
    top = {k: v for k, v in state_to_dict(sm.state).items()
           if k not in ("groups", "nodes", "events", "checkpoints", "queues")}
    back = {k: v for k, v in state_to_dict(m.state).items()
            if k not in ("groups", "nodes", "events", "checkpoints", "queues")}
    assert back == top


def test_failsafe_off_is_stored_and_a_record_without_the_setting_reads_on() -> None:
    """Failsafe is on in a new cluster, so `off` must be written (the record used to
    leave the field out when off); a record without it (an earlier build's) reads as
    the default, as the Raft snapshots do (docs/design.md "Failsafe")."""
    import json

    from vnfha.coordinator.model import DEFAULT_FAILSAFE_LEASE_MS

    sm = StateMachine()
    assert sm.state.failsafe_lease_ms == DEFAULT_FAILSAFE_LEASE_MS
    kv: dict[bytes, tuple[bytes, int]] = {}
    for rev, cmd in enumerate([C.apply_groups([{"name": "g"}]), C.set_failsafe(0)], start=1):
        before = sm.state
        result = sm.apply(cmd)
        ops = write_ops(KEYS, before, sm.state, cmd["rid"], result, (), create=rev == 1)
        for k, v in ops.puts.items():
            kv[k] = (v, kv[k][1] if k in kv else rev)
    assert load(kv).state.failsafe_lease_ms == 0
    record = json.loads(kv[KEYS.cluster][0])
    assert record.pop("failsafe_lease_ms") == 0
    kv[KEYS.cluster] = (json.dumps(record).encode(), kv[KEYS.cluster][1])
    assert load(kv).state.failsafe_lease_ms == DEFAULT_FAILSAFE_LEASE_MS
