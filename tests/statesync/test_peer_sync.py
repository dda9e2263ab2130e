"""Direct peer sync over real gRPC on loopback: sender, receiver, fencing, catch-up.

The committed-epoch source is a plain value here (the coordinators' answer);
the end-to-end tests use real coordinators.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from vnfha.agents.statesync.errors import (
    NotActiveError,
    RefusedError,
    StaleEpochError,
    SyncUnavailable,
)
from vnfha.agents.statesync.receiver import SyncReceiver
from vnfha.agents.statesync.sender import FixedEpoch, SyncPeerClient, SyncSender

GROUP = "kv"


class ListApp:
    """The application: a list of entries; a snapshot is the JSON list."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.lock = threading.Lock()

    def apply_updates(self, first_sequence: int, entries: list[bytes]) -> None:
        with self.lock:
            self.items.extend(e.decode() for e in entries)

    def install_snapshot(self, sequence: int, data: bytes) -> None:
        with self.lock:
            self.items = json.loads(data)


class Committed:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.asked = 0

    def __call__(self, group: str, at_least: int) -> int:
        self.asked += 1
        return self.epoch


class Ctx:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.ok = True

    def valid(self) -> bool:
        return self.ok


@pytest.fixture
def rx() -> Iterator[tuple[SyncReceiver, ListApp, Committed]]:
    app, committed = ListApp(), Committed(1)
    r = SyncReceiver(GROUP, app, committed, bind="127.0.0.1:0")
    r.start()
    yield r, app, committed
    r.stop()


def addr(r: SyncReceiver) -> str:
    return f"127.0.0.1:{r.port}"


def wait(cond, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_sync_mode_acknowledges_only_applied_updates_in_order(rx):
    r, app, _ = rx
    s = SyncSender(GROUP, Ctx(1), [addr(r)], base=(0, b"[]"))
    try:
        for i in range(50):
            seq = s.send(f"u{i}".encode())
            # Acknowledged means applied on the standby, in order.
            assert app.items[-1] == f"u{i}" and seq == i + 1
        assert app.items == [f"u{i}" for i in range(50)]
        assert r.position().applied == 50 and s.installs == 1
    finally:
        s.close()


def test_receiver_that_lost_its_state_catches_up_from_the_base(rx):
    r, app, _ = rx
    s = SyncSender(GROUP, Ctx(1), [addr(r)], base=(0, b"[]"))
    try:
        for i in range(10):
            s.send(f"u{i}".encode())
        s.set_base(10, json.dumps([f"u{i}" for i in range(10)]).encode())  # a checkpoint
        for i in range(10, 15):
            s.send(f"u{i}".encode())
        r.reset()  # the standby restarted with nothing
        app.items = []
        s.send(b"u15")
        assert app.items == [f"u{i}" for i in range(16)]
        assert s.installs == 2
    finally:
        s.close()


def test_deposed_sender_is_refused_stale_epoch_and_stops(rx):
    r, app, committed = rx
    old = SyncSender(GROUP, Ctx(1), [addr(r)], base=(0, b"[]"))
    try:
        old.send(b"a")
        committed.epoch = 2  # failover committed: epoch 2
        new = SyncSender(GROUP, Ctx(2), [addr(r)], base=(1, b'["a"]'))
        new.send(b"b")
        new.close()
        seq = old.append(b"zombie")
        with pytest.raises(StaleEpochError) as e:
            old.wait_acked(seq)
        assert e.value.error == "stale_epoch" and e.value.epoch == 2
        with pytest.raises(StaleEpochError):
            old.append(b"again")  # deposed for good
        assert app.items == ["a", "b"]
        assert r.refused["stale_epoch"] >= 1
    finally:
        old.close()


def test_bad_messages_get_clear_errors_and_apply_nothing(rx):
    r, app, committed = rx
    s = SyncSender(GROUP, Ctx(1), [addr(r)], base=(0, b"[]"))
    s.send(b"a")
    s.close()
    before = (list(app.items), r.position())
    c = SyncPeerClient(addr(r))
    try:
        with pytest.raises(RefusedError) as e:
            c.apply("other", 1, 2, [b"x"])
        assert e.value.error == "wrong_group"
        with pytest.raises(RefusedError) as e:
            c.apply(GROUP, 1, 5, [b"x"])
        assert e.value.error == "sequence_gap" and e.value.applied == 1
        assert "expected 2" in e.value.message
        with pytest.raises(RefusedError) as e:
            c.apply(GROUP, 1, 1, [b"x"])
        assert e.value.error == "duplicate"
        asked = committed.asked
        with pytest.raises(RefusedError) as e:
            c.apply(GROUP, 7, 2, [b"x"])  # forged future epoch
        assert e.value.error == "future_epoch" and committed.asked == asked + 1
        with pytest.raises(RefusedError) as e:
            c.install(GROUP, 7, 0, b'["forged"]')
        assert e.value.error == "future_epoch"
        assert (app.items, r.position()) == before  # nothing applied, epoch not raised
        assert c.apply(GROUP, 1, 2, [b"b"]).applied == 2  # the real active goes on
    finally:
        c.close()


def test_sender_refuses_to_sign_once_its_context_is_invalid(rx):
    r, _, _ = rx
    ctx = Ctx(1)
    s = SyncSender(GROUP, ctx, [addr(r)], base=(0, b"[]"))
    try:
        s.send(b"a")
        ctx.ok = False
        with pytest.raises(NotActiveError):
            s.append(b"b")
    finally:
        s.close()


def test_receiver_promoted_refuses_its_own_epoch_and_older(rx):
    r, _, committed = rx
    committed.epoch = 3
    r.mark_active(3)
    c = SyncPeerClient(addr(r))
    try:
        with pytest.raises(StaleEpochError):
            c.apply(GROUP, 2, 1, [b"x"])
        with pytest.raises(RefusedError) as e:
            c.install(GROUP, 3, 0, b"[]")
        assert e.value.error == "conflict"
    finally:
        c.close()


class SlowApp(ListApp):
    def apply_updates(self, first_sequence: int, entries: list[bytes]) -> None:
        time.sleep(0.01)
        super().apply_updates(first_sequence, entries)


def test_async_mode_reports_lag_and_bounds_it():
    app = SlowApp()
    r = SyncReceiver(GROUP, app, Committed(1), bind="127.0.0.1:0")
    r.start()
    s = SyncSender(GROUP, Ctx(1), [addr(r)], base=(0, b"[]"), mode="async", max_lag=5,
                   ack_timeout=5.0)
    try:
        s.send(b"first")  # returns without waiting in async mode
        wait(lambda: s.lag()[addr(r)] == 0)
        worst = 0
        for i in range(60):
            s.append(f"u{i}".encode())
            worst = max(worst, s.lag()[addr(r)])
        assert 1 < worst <= 5  # it lagged, and never by more than max_lag
        wait(lambda: s.lag()[addr(r)] == 0)
        assert app.items == ["first"] + [f"u{i}" for i in range(60)]
    finally:
        s.close()
        r.stop()


def test_async_mode_keeps_serving_without_a_standby(rx):
    r, _, _ = rx
    r.stop()
    s = SyncSender(GROUP, Ctx(1), [addr(r)], base=(0, b"[]"), mode="async", max_lag=5)
    try:
        for i in range(20):
            s.append(f"v{i}".encode())
        assert s.lag() == {addr(r): 20}
    finally:
        s.close()


def test_sync_mode_without_a_standby_does_not_acknowledge(rx):
    r, _, _ = rx
    r.stop()
    s = SyncSender(GROUP, Ctx(1), [addr(r)], base=(0, b"[]"), ack_timeout=0.3)
    try:
        with pytest.raises(SyncUnavailable):
            s.send(b"a")
    finally:
        s.close()


def test_fixed_epoch_is_for_tools():
    assert FixedEpoch(4).valid() and FixedEpoch(4).epoch == 4
