"""The peer-sync fencing rules (agents/statesync/fence.py), with plain values."""

from __future__ import annotations

from vnfha.agents.statesync.fence import (
    FenceState,
    SyncError,
    accept_install,
    accept_update,
    check_install,
    check_update,
    mark_active,
)


def installed(epoch: int = 3, applied: int = 10) -> FenceState:
    return accept_install(FenceState("kv"), epoch, applied)


def test_in_order_updates_are_accepted_and_advance():
    st = installed()
    v = check_update(st, "kv", 3, 11, 2, committed=3)
    assert v.ok
    st = accept_update(v.state, 11, 2)
    assert st.applied == 12 and st.expected == 13


def test_wrong_group_is_refused_and_changes_nothing():
    st = installed()
    v = check_update(st, "other", 3, 11, 1, committed=3)
    assert v.error is SyncError.WRONG_GROUP and "other" in v.message
    assert v.state == st


def test_older_epoch_is_refused_as_stale():
    st = installed(epoch=4)
    v = check_update(st, "kv", 3, 11, 1, committed=4)
    assert v.error is SyncError.STALE_EPOCH and "deposed" in v.message
    assert v.state == st
    assert check_install(st, "kv", 3, 0, committed=4).error is SyncError.STALE_EPOCH


def test_forged_future_epoch_is_refused_and_not_recorded():
    st = installed(epoch=3)
    v = check_update(st, "kv", 9, 11, 1, committed=3)
    assert v.error is SyncError.FUTURE_EPOCH and "forged" in v.message
    assert v.state == st  # the real active (epoch 3) is not fenced out by a lie
    assert check_install(st, "kv", 9, 0, committed=3).error is SyncError.FUTURE_EPOCH
    assert check_update(st, "kv", 3, 11, 1, committed=3).ok


def test_gap_and_duplicate_name_the_expected_sequence():
    st = installed(applied=10)
    gap = check_update(st, "kv", 3, 13, 1, committed=3)
    assert gap.error is SyncError.SEQUENCE_GAP and "expected 11" in gap.message
    dup = check_update(st, "kv", 3, 10, 1, committed=3)
    assert dup.error is SyncError.DUPLICATE and "expected 11" in dup.message
    assert gap.state == st and dup.state == st


def test_new_epoch_is_recorded_but_needs_an_install_first():
    st = installed(epoch=3, applied=10)
    v = check_update(st, "kv", 4, 11, 1, committed=4)
    assert v.error is SyncError.SNAPSHOT_REQUIRED
    assert v.state.epoch == 4 and not v.state.synced
    # From that moment the old active is fenced, even before the install arrives.
    assert check_update(v.state, "kv", 3, 11, 1, committed=4).error is SyncError.STALE_EPOCH
    ok = check_install(v.state, "kv", 4, 10, committed=4)
    assert ok.ok
    st = accept_install(ok.state, 4, 10)
    assert check_update(st, "kv", 4, 11, 1, committed=4).ok


def test_fresh_receiver_needs_an_install():
    v = check_update(FenceState("kv"), "kv", 1, 1, 1, committed=1)
    assert v.error is SyncError.SNAPSHOT_REQUIRED


def test_install_at_the_same_epoch_resets_position():
    st = installed(epoch=3, applied=10)
    assert check_install(st, "kv", 3, 50, committed=3).ok
    st = accept_install(st, 3, 50)
    assert st.applied == 50 and st.synced


def test_local_active_refuses_its_own_epoch_and_older():
    st = mark_active(installed(epoch=3), 4)
    assert check_update(st, "kv", 4, 1, 1, committed=4).error is SyncError.CONFLICT
    assert check_update(st, "kv", 3, 11, 1, committed=4).error is SyncError.STALE_EPOCH
    # A later, committed epoch (we were deposed) is taken as usual.
    assert check_install(st, "kv", 5, 0, committed=5).ok


def test_malformed_values_are_invalid():
    st = installed()
    assert check_update(st, "kv", 0, 11, 1, committed=3).error is SyncError.INVALID
    assert check_update(st, "kv", 3, 11, 0, committed=3).error is SyncError.INVALID
    assert check_update(st, "kv", 3, 0, 1, committed=3).error is SyncError.INVALID
    assert check_install(st, "kv", 3, -1, committed=3).error is SyncError.INVALID
