"""The pure disk-fault policy: which errors are retried, when the node gives up."""

from __future__ import annotations

import errno

from vnfha.coordinator.raft.diskfault import (
    FaultPolicy,
    PersistFault,
    RateLimit,
    decide,
    retry_delay,
)

POLICY = FaultPolicy(first_retry=0.1, max_retry=2.0, fatal_after=10.0)


def fault(code: int, broken: bool = False) -> PersistFault:
    return PersistFault.from_error("append", OSError(code, "x"), "/d/journal.log", now=100.0) \
        if not broken else PersistFault("append", code, "/d/journal.log", 100.0, broken=True,
                                        last_errno=code)


def test_disk_full_is_retried_for_ever() -> None:
    assert decide(POLICY, fault(errno.ENOSPC), now=100.0 + 3600) == "retry"
    assert decide(POLICY, fault(errno.EDQUOT), now=100.0 + 3600) == "retry"


def test_other_errors_are_fatal_after_the_grace() -> None:
    for code in (errno.EIO, errno.EROFS):
        assert decide(POLICY, fault(code), now=109.9) == "retry"
        assert decide(POLICY, fault(code), now=110.0) == "fatal"


def test_a_broken_journal_is_fatal_after_the_grace_even_when_full() -> None:
    assert decide(POLICY, fault(errno.ENOSPC, broken=True), now=105.0) == "retry"
    assert decide(POLICY, fault(errno.ENOSPC, broken=True), now=110.0) == "fatal"


def test_back_off_doubles_and_is_capped() -> None:
    assert [retry_delay(POLICY, n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert retry_delay(POLICY, 10_000) == 2.0


def test_describe_names_errno_op_and_path() -> None:
    assert fault(errno.EIO).describe() == "cannot persist: EIO on append of /d/journal.log"
    assert fault(errno.EIO, broken=True).describe().startswith("broken journal: EIO")


def test_rate_limit_one_line_per_interval() -> None:
    limit = RateLimit(5.0)
    allowed = [limit.allow("k", t / 10) for t in range(0, 200)]  # 20 s, every 100 ms
    assert sum(allowed) == 4
    assert limit.take_suppressed("k") == 196
