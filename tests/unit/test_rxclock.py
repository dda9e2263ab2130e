"""Kernel receive stamps to monotonic arrivals (coordinator/rxclock.py).

The property that matters for the lease argument: a converted arrival is never earlier
than the true one (the coordinator's expiry must not end before the agent's lease), and
never later than the read, whatever the realtime clock does meanwhile."""

from __future__ import annotations

import random
import socket
import time

import pytest

from vnfha.coordinator import rxclock
from vnfha.coordinator.rxclock import TOLERANCE, ArrivalClock

BASE = 1.8e9  # realtime minus monotonic, seconds


def test_without_a_sample_or_a_stamp_the_read_time_counts() -> None:
    c = ArrivalClock()
    assert c.arrival(BASE + 5.0, read_at=10.0) == 10.0  # no offset known yet
    c.sample(10.0, BASE + 10.0, 10.0)
    assert c.arrival(None, read_at=10.0) == 10.0


def test_a_backlog_is_dated_when_it_arrived_not_when_read() -> None:
    c = ArrivalClock()
    c.sample(10.0, BASE + 10.0, 10.0)
    # Read at 10.0, but the kernel queued it 0.3 s earlier: that is its arrival
    # (plus the tolerance, on the late side).
    assert 9.7 <= c.arrival(BASE + 9.7, read_at=10.0) <= 9.7 + 2 * TOLERANCE


def test_never_later_than_the_read() -> None:
    c = ArrivalClock()
    c.sample(10.0, BASE + 10.0, 10.0)
    assert c.arrival(BASE + 10.5, read_at=10.0) == 10.0


def test_a_forward_step_while_queued_does_not_date_it_earlier() -> None:
    c = ArrivalClock()
    c.sample(10.0, BASE + 10.0, 10.0)
    # Arrived at 10.1 (stamped in the old realtime), then realtime jumps 5 s ahead,
    # read at 10.2: the new offset would date it 4.9 s early. The step is noticed at
    # the read, and nothing read now is dated before that.
    stamp = BASE + 10.1
    assert c.sample(10.2, BASE + 5.0 + 10.2, 10.2) is True
    assert c.steps == 1
    assert c.arrival(stamp, read_at=10.2) >= 10.1
    # Datagrams that arrive after the step are dated normally again.
    c.sample(11.0, BASE + 5.0 + 11.0, 11.0)
    assert 10.9 <= c.arrival(BASE + 5.0 + 10.9, read_at=11.0) <= 10.9 + 2 * TOLERANCE


def test_a_backward_step_is_noticed_and_dates_later_only() -> None:
    c = ArrivalClock()
    c.sample(10.0, BASE + 10.0, 10.0)
    stamp = BASE + 10.1  # arrived at 10.1
    assert c.sample(10.2, BASE - 3.0 + 10.2, 10.2) is True
    assert 10.1 <= c.arrival(stamp, read_at=10.2) <= 10.2


def test_a_slew_is_not_a_step() -> None:
    c = ArrivalClock()
    c.sample(10.0, BASE + 10.0, 10.0)
    # 500 ppm over 10 s: 5 ms, what adjtimex may do; below the allowance.
    assert c.sample(20.0, BASE + 20.0 + 0.005, 20.0) is False


def test_a_preempted_sample_is_not_trusted() -> None:
    """Realtime read 30 ms after the first monotonic reading: the sample cannot tell a
    step from the delay, so nothing queued before it is dated earlier than it."""
    c = ArrivalClock()
    c.sample(10.0, BASE + 10.0, 10.0)
    c.sample(10.2, BASE + 10.23, 10.23)
    assert c.unsure == 1
    assert c.arrival(BASE + 10.1, read_at=10.23) == 10.23


@pytest.mark.parametrize("seed", range(20))
def test_random_clocks_never_date_an_arrival_early(seed: int) -> None:
    """Random arrivals, reads late by up to a second, realtime slewed at up to 500 ppm
    and stepped either way now and then (one step at most between two reads), and
    each sample's clock reads split by random delays (a preempted thread): every
    arrival is dated between the truth and the read."""
    rnd = random.Random(seed)
    c = ArrivalClock()
    t = 0.0  # true monotonic time
    offset = BASE  # realtime - monotonic, as it moves
    rate = 0.0  # current slew
    queued: list[tuple[float, float]] = []  # (true arrival, kernel stamp)
    checked = 0

    def advance(dt: float) -> None:
        nonlocal t, offset
        t += dt
        offset += rate * dt

    for _ in range(3000):
        advance(rnd.expovariate(1 / 0.02))
        if rnd.random() < 0.02:
            rate = rnd.uniform(-0.0005, 0.0005)
        if rnd.random() < 0.01:
            offset += rnd.choice((-1, 1)) * rnd.uniform(0.0001, 10.0)  # a step
        if rnd.random() < 0.6:
            queued.append((t, t + offset))  # stamped by the kernel in realtime
            continue
        # A read: monotonic, realtime and monotonic again, with delays between.
        before = t
        advance(rnd.choice((0.0, 0.0, rnd.uniform(0, 0.002), rnd.uniform(0, 0.05))))
        real = t + offset
        advance(rnd.choice((0.0, 0.0, rnd.uniform(0, 0.002), rnd.uniform(0, 0.05))))
        read_at = t
        c.sample(before, real, read_at)
        for true, stamp in queued:
            got = c.arrival(stamp, read_at)
            assert true - 1e-9 <= got <= read_at, (true, got, read_at)
            checked += 1
        queued = [q for q in queued if rnd.random() < 0.2]  # some wait for a later read
    assert checked > 500


def measure_one_arrival() -> tuple[float, float, float]:
    """Send a datagram, leave it unread for 0.2 s, read it: (sent, arrived, read_at)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.setsockopt(socket.SOL_SOCKET, rxclock.SO_TIMESTAMPNS, 1)
        rx.bind(("127.0.0.1", 0))
        sent = time.monotonic()
        tx.sendto(b"x", rx.getsockname())
        time.sleep(0.2)
        _data, anc, _flags, _addr = rx.recvmsg(64, rxclock.ANCBUF)
        # A sample preempted between its clock reads cannot tell a step and (rightly)
        # dates by the read: on a loaded machine, sample again, as the intake does.
        for _ in range(200):
            before, real, read_at = time.monotonic(), time.time(), time.monotonic()
            c = ArrivalClock()
            c.sample(before, real, read_at)
            if c.unsure == 0:
                break
        assert c.unsure == 0, "no unpreempted clock sample in 200 tries"
        stamp = rxclock.kernel_stamp(anc)
        assert stamp is not None
        return sent, c.arrival(stamp, read_at), read_at


def test_the_kernel_stamps_a_datagram_when_it_arrives() -> None:
    """A real socket: a datagram left unread for 0.2 s is dated by its arrival.

    The realtime clock is shared with everything else on the machine: in the whole
    suite it moved back once between a datagram's stamp and its read, and a single
    sample cannot see that, so the clock dated by the read (the safe side: never
    later than the read, which is asserted every time). The arrival must show in at
    least one of three measurements."""
    results = [measure_one_arrival() for _ in range(3)]
    assert all(arrived <= read_at for _s, arrived, read_at in results), results
    assert any(sent - 0.01 <= arrived < read_at - 0.1 for sent, arrived, read_at in results), \
        results


def test_kernel_stamp_picks_the_timespec_among_control_messages() -> None:
    ts = rxclock.TIMESPEC.pack(12, 500_000_000)
    assert rxclock.SOL_SOCKET == socket.SOL_SOCKET
    assert rxclock.kernel_stamp([]) is None
    assert rxclock.kernel_stamp([(socket.SOL_SOCKET, 99, ts)]) is None  # another kind
    assert rxclock.kernel_stamp([(0, 99, b""), (socket.SOL_SOCKET,
                                                rxclock.SO_TIMESTAMPNS, ts)]) == 12.5
