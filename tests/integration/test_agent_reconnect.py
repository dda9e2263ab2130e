"""An agent whose coordinator is down, then back: real coordinator, real gRPC on loopback.

What must hold: while the coordinator is down the agent's Keepalive calls keep breaking
(one every 0.1 s or so) and none of them leaves a thread behind; when it is back, the
agent's rounds reach the new call, and its lease returns. Before, gRPC's request thread
of every broken call stayed blocked on a queue all calls shared and later took, and threw
away, one round each: a 30 s outage left ~250, which kept the active's lease from
returning over gRPC until a new fast-path key was in, up to 5 s after its standby heard
the quorum (tests/e2e/test_netns_failsafe.py failed on that in CI).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from support import free_port, wait_for

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.server import Coordinator
from vnfha_lab.testpki import LabPki

TTL = 1.0
INTERVAL = 0.1
OUTAGE = 3.0  # long enough for ~20 broken calls


def coordinator_on(port: int, pki: LabPki) -> Coordinator:
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}"}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 0.2},
        "groups": [{"name": "web"}],
        "tls": pki.section("coordinator/c1"),
    })
    c = Coordinator(cfg)
    c.start()
    return c


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def pki(tmp_path) -> LabPki:
    return LabPki(tmp_path / "pki")


@pytest.fixture
def session(port: int, pki: LabPki) -> Iterator[AgentSession]:
    s = AgentSession("vm1", [HostedMember("web", "web-1", 100)], [f"127.0.0.1:{port}"],
                     ttl=TTL, interval=INTERVAL, tls=pki.files("node/vm1"))
    try:
        yield s
    finally:
        s.stop()


def test_a_coordinator_outage_leaves_no_threads_and_the_lease_returns(
        port: int, pki: LabPki, session: AgentSession) -> None:
    c = coordinator_on(port, pki)
    try:
        session.start()
        wait_for(lambda: session.lease.valid(time.monotonic())
                 and session._routes.is_open(0), 10, what="the first lease, on the fast path")
    finally:
        c.stop()
    wait_for(lambda: not session.lease.valid(time.monotonic()), 5, what="the lease lapsed")
    before = threading.active_count()
    most = before
    end = time.monotonic() + OUTAGE
    while time.monotonic() < end:  # bounded: OUTAGE / 0.05 samples
        most = max(most, threading.active_count())
        time.sleep(0.05)
    # The old agent grew by one thread per broken call: ~20 here, ~250 in a 30 s outage.
    assert most - before <= 3, f"{most - before} threads more during a {OUTAGE:.0f} s outage"
    c = coordinator_on(port, pki)
    try:
        wait_for(lambda: session.lease.valid(time.monotonic()), 15,
                 what="the lease back over gRPC")
        assert session.answers[0] is not None and session.answers[0][1] == "c1"
    finally:
        c.stop()


def test_a_coordinator_stopped_under_open_streams_leaves_no_pending_task(
        port: int, pki: LabPki, session: AgentSession) -> None:
    """The agent's streams are open when the coordinator stops: the server's tasks for
    them end with it. Before, they were left pending on the closed loop, and the garbage
    collector printed "Task was destroyed but it is pending!" with a traceback to
    whatever ran then (a CI test that reads stderr failed on it)."""
    c = coordinator_on(port, pki)
    loop = c._loop
    try:
        session.start()
        wait_for(lambda: session.lease.valid(time.monotonic()), 10, what="the first lease")
        wait_for(lambda: session._calls[0] is not None, 5, what="a Keepalive stream")
    finally:
        c.stop()
    pending = [t.get_name() for t in asyncio.all_tasks(loop) if not t.done()]
    assert pending == []
