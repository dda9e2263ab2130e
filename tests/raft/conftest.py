"""Fixtures for raft tests: every ReplicatedLog built here is stopped at teardown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from raft_helpers import CounterSM

from vnfha.coordinator.raft import RaftSettings, ReplicatedLog


class LogFactory:
    """Builds and starts logs; remembers them so teardown can stop every one."""

    def __init__(self) -> None:
        self.logs: list[ReplicatedLog] = []

    def __call__(self, settings: RaftSettings, sm: CounterSM | None = None,
                 start: bool = True, **kw: object) -> ReplicatedLog:
        log = ReplicatedLog(settings, sm if sm is not None else CounterSM(), **kw)  # type: ignore[arg-type]
        self.logs.append(log)
        if start:
            log.start()
        return log


@pytest.fixture
def make_log() -> Iterator[LogFactory]:
    factory = LogFactory()
    try:
        yield factory
    finally:
        for log in factory.logs:
            log.stop()
