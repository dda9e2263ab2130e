"""What a backend declares in `guarantees` (store/base.py) holds, checked by running it:
each test reads the declaration, never the backend's name."""

from __future__ import annotations

import time
from collections.abc import Callable

from vnfha.coordinator import commands as C
from vnfha.coordinator.store.base import Store

WAIT = 15.0  # bound for a restarted store to lead and catch up; never reached when green


def _leading(store: Store) -> None:
    deadline = time.monotonic() + WAIT
    while not store.is_leader():
        assert time.monotonic() < deadline, "no leadership within the bound"
        time.sleep(0.02)


def test_a_restart_keeps_what_the_backend_declares(reopenable: Callable[[], Store]) -> None:
    """`durable`: the state survives a stop and a new start on the same data.
    `monotonic_reads_after_restart`: from its start on, whenever the store lets reads
    through (`read_gate` is None), they are no older than what it served before.
    A backend that declares neither really does start empty (so the flags say
    something)."""
    first = reopenable()
    first.start()
    try:
        _leading(first)
        assert first.submit(C.apply_groups([{"name": "kept", "vip": "198.18.0.20/24"}]))["ok"]
        before = first.state().revision
    finally:
        first.stop()

    again = reopenable()
    again.start()
    try:
        declared = again.guarantees
        deadline = time.monotonic() + WAIT
        samples = 0
        while True:
            gate = again.read_gate()
            st = again.state()  # read after the gate: the state only moves forward
            samples += 1
            if gate is None and declared.monotonic_reads_after_restart:
                assert st.revision >= before, (samples, st.revision, before)
            if gate is None and (not declared.durable or st.revision >= before):
                break
            assert time.monotonic() < deadline, f"still gated or behind: {gate!r}"
            time.sleep(0.01)
        if declared.durable:
            assert "kept" in again.state().groups
        else:
            assert again.state().groups == {} and again.state().revision == 0
    finally:
        again.stop()
