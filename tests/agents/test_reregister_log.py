"""A re-registration after UNKNOWN_NODE is routine right after start (a coordinator has
not applied the first registration yet) and alarming only after a history reset: the
log level says which (issue 15, "log noise"; found by the new-operator re-run, where a
clean first start of the README's cluster logged two WARNINGs per agent)."""

from __future__ import annotations

import logging

import pytest

from vnfha.agents.session import AgentSession, HostedMember


@pytest.fixture
def session():
    s = AgentSession("vm1", [HostedMember("web", "web-1")], ["127.0.0.1:9"], ttl=0.3,
                     interval=0.1, fastpath=False)
    yield s
    s._stubs.close()


def levels(caplog: pytest.LogCaptureFixture) -> list[tuple[int, object]]:
    return [(r.levelno, getattr(r, "history_reset", None)) for r in caplog.records
            if r.getMessage() == "node registered again after a coordinator did not know it"]


def test_routine_reregistration_is_info(session, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="vnfha.agent")
    session._assignment_revision = 5
    session._after_reregister(8)  # commits after what the agent saw: no reset
    assert levels(caplog) == [(logging.INFO, False)]


def test_reregistration_after_a_history_reset_is_a_warning(
        session, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="vnfha.agent")
    session._assignment_revision = 50
    session._after_reregister(3)  # below the newest revision seen: the history was reset
    assert levels(caplog) == [(logging.WARNING, True)]
