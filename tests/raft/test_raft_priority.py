"""The tick thread's priority rule (coordinator/raft/priority.py): pure, no scheduler."""

from __future__ import annotations

from vnfha.coordinator.raft.priority import RESET_ON_FORK, Scheduling, raised

FIFO, OTHER, HIGHEST = 1, 0, 99


def test_a_real_time_tick_thread_goes_one_priority_up() -> None:
    assert raised(Scheduling(FIFO, 5), FIFO, HIGHEST) == Scheduling(FIFO, 6)
    # reset-on-fork is kept as the process had it
    assert raised(Scheduling(FIFO | RESET_ON_FORK, 5), FIFO, HIGHEST) \
        == Scheduling(FIFO | RESET_ON_FORK, 6)


def test_an_ordinary_or_topmost_thread_is_left_alone() -> None:
    assert raised(Scheduling(OTHER, 0), FIFO, HIGHEST) is None  # realtime: off
    assert raised(Scheduling(FIFO, HIGHEST), FIFO, HIGHEST) is None
