"""Arrival times of fast-path datagrams from the kernel's receive timestamps. Pure.

Why: a keepalive's arrival is the start of the coordinator's (generous) expiry clock.
Stamped when the intake thread reads it, a datagram that waited in the socket buffer
while the process was busy or descheduled looks late, so under load live nodes looked
silent (issue 14). The kernel stamps every datagram as it is queued (SO_TIMESTAMPNS);
that stamp is the moment it arrived, whatever the process was doing.

The kernel stamps with CLOCK_REALTIME, the lease table counts in CLOCK_MONOTONIC. A
stamp is converted by the offset between the two clocks read at the read. The lease
argument needs the converted arrival never to be *earlier* than the true one (the
coordinator's expiry must not end before the agent's lease, design.md §3), and the
offset moves if the realtime clock is stepped (settimeofday, an NTP step) or slewed
(at most 500 ppm by adjtimex) while a datagram waits. So:

* the offset is sampled at every read, the realtime clock read between two readings of
  the monotonic one: the later monotonic reading is used, so a delay between the reads
  (a preempted thread) can only make the offset larger, and arrivals later;
* a change of the offset larger than the sampling spread, `TOLERANCE` and a slew
  (`MAX_SLEW` per second since the last sample) could explain is a step: every
  datagram read up to then counts as arrived no earlier than the moment the step was
  noticed (later, never earlier, than the truth); a sample whose spread is itself
  above `TOLERANCE` is treated the same way (it cannot tell);
* what a single step or slew below that threshold can still move a stamp (the same
  allowance, plus the slew over the datagram's own wait) is added to every converted
  stamp, on the late side;
* an arrival is never later than the read (the old stamp), and a datagram without a
  kernel stamp is dated by the read.

Later arrivals only ever make an expiry later, so none of this can weaken the lease
argument; it only stops the reader's lateness from counting as the node's silence.
"""

from __future__ import annotations

import math
import struct

#: Linux SO_TIMESTAMPNS (= SCM_TIMESTAMPNS, "_OLD" in the kernel headers: a struct
#: timespec of two longs) on x86, arm and most architectures; Python does not name it.
SO_TIMESTAMPNS = 35
SOL_SOCKET = 1  #: Linux socket.SOL_SOCKET (kept here so this module needs no socket)
TIMESPEC = struct.Struct("@qq")
#: ancillary buffer for one timespec control message (CMSG_SPACE(16) on 64-bit)
ANCBUF = 64
#: clock offset change below this (plus the slew allowance) is noise, seconds
TOLERANCE = 0.001
#: the kernel slews CLOCK_REALTIME by at most 500 ppm; twice that, to be safe
MAX_SLEW = 0.001


def timespec(data: bytes) -> float | None:
    """Seconds of a control message's struct timespec; None if it is not one."""
    if len(data) < TIMESPEC.size:
        return None
    sec, nsec = TIMESPEC.unpack_from(data)
    return float(sec + nsec * 1e-9)


def kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The receive stamp (realtime seconds) among a recvmsg's control messages; None
    if the kernel sent none (the option off, or a socket family without it)."""
    stamp = None
    for level, kind, data in ancillary:
        if level == SOL_SOCKET and kind == SO_TIMESTAMPNS:
            stamp = timespec(data)
    return stamp


class ArrivalClock:
    """Converts kernel receive stamps (realtime) to monotonic arrival times."""

    __slots__ = ("_allowance", "_at", "_offset", "_spread", "_step_seen", "steps", "unsure")

    def __init__(self) -> None:
        self._offset: float | None = None  # monotonic - realtime at the last sample
        self._at = 0.0  # monotonic time of the last sample
        self._spread = 0.0  # its sampling spread
        self._allowance = TOLERANCE  # what an unnoticed change may have moved a stamp
        self._step_seen = -math.inf  # when the last realtime step was noticed
        self.steps = 0  # steps noticed (for a log line and tests)
        self.unsure = 0  # samples too spread to tell (treated as steps, not logged)

    def sample(self, before: float, real: float, after: float) -> bool:
        """The clocks read at a read: monotonic `before`, then realtime `real`, then
        monotonic `after`. True if a realtime step was noticed."""
        spread = max(0.0, after - before)
        offset = after - real
        stepped = False
        allowance = TOLERANCE + spread
        if self._offset is not None:
            allowance += self._spread + MAX_SLEW * max(0.0, after - self._at)
            if abs(offset - self._offset) > allowance:
                self._step_seen = after
                self.steps += 1
                stepped = True
        if spread > TOLERANCE:  # preempted between the reads: cannot tell a step
            self._step_seen = after
            self.unsure += 1
        self._offset, self._at, self._spread = offset, after, spread
        self._allowance = allowance
        return stepped

    def arrival(self, stamp: float | None, read_at: float) -> float:
        """The monotonic arrival of a datagram the kernel stamped `stamp` (realtime
        seconds; None: no stamp) and that was read by monotonic `read_at` (the last
        sample's `after`, or later)."""
        if stamp is None or self._offset is None:
            return read_at
        converted = stamp + self._offset
        converted += self._allowance + MAX_SLEW * max(0.0, read_at - converted)
        return min(read_at, max(converted, self._step_seen))
