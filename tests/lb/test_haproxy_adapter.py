"""The HAProxy adapter against a real HAProxy (Debian's) in a network namespace.

The pool comes from a snapshot put in place by the test (no coordinators), so
what is checked is the adapter: it drives HAProxy's runtime API to the pool,
verifies by reading back, survives a reload and an HAProxy restart.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vnfha.agents.lb.agent import LbAgent
from vnfha.agents.lb.config import LbConfig
from vnfha.agents.lb.haproxy import HaproxyAdmin, HaproxyError
from vnfha.v1 import pool_pb2
from vnfha_lab import labhaproxy
from vnfha_lab.netlab import Lab

pytestmark = pytest.mark.slow

SERVERS = {"srv-a": "198.18.0.11:8080", "srv-b": "198.18.0.12:8080", "srv-c": "198.18.0.13:8080"}
MAP = {"a": "srv-a", "b": "srv-b", "c": "srv-c"}


class Haproxy:
    def __init__(self, lab: Lab, root: Path) -> None:
        if shutil.which("haproxy") is None:
            pytest.fail("haproxy is not installed: run scripts/setup.sh")
        self.host = lab.add_host("lb1", ipv4=lab.address(21))
        self.sock = root / "admin.sock"
        self.cfg = root / "haproxy.cfg"
        self.cfg.write_text(labhaproxy.render_cfg(self.sock, "*:8080", "be", SERVERS))
        self.log = root / "haproxy.log"
        self.admin = HaproxyAdmin(str(self.sock))
        self.start()

    def start(self) -> None:
        self.proc = labhaproxy.start(self.host, self.cfg, self.log)
        labhaproxy.wait_ready(self.admin, "be")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)
        self.sock.unlink(missing_ok=True)

    def admin_states(self) -> dict[str, int]:
        return {n: s.admin_state for n, s in self.admin.servers_state("be").items()}


@pytest.fixture
def haproxy(lab: Lab, tmp_path: Path) -> Iterator[Haproxy]:
    h = Haproxy(lab, tmp_path)
    yield h
    h.stop()


def snapshot(version: int, in_service: dict[str, bool]) -> pool_pb2.WatchPoolResponse:
    return pool_pb2.WatchPoolResponse(
        revision=version, group="web", pool_version=version,
        members=[pool_pb2.PoolMember(member=m, in_service=v) for m, v in in_service.items()])


def agent_for(h: Haproxy, **kw) -> LbAgent:
    cfg = LbConfig(group="web", admin_socket=str(h.sock), backend="be", servers=MAP,
                   reconcile_interval=kw.pop("interval", 0.1), **kw)
    return LbAgent("lb1", [], cfg)


def wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_reconcile_drives_haproxy_to_the_pool(haproxy: Haproxy):
    agent = agent_for(haproxy)
    agent._latest = snapshot(4, {"a": True, "b": False, "c": True})
    assert agent.reconcile() is True
    assert haproxy.admin_states() == {"srv-a": 0, "srv-b": 1, "srv-c": 0}
    assert agent.applied_version == 4
    agent._latest = snapshot(5, {"a": True, "b": True, "c": False})
    assert agent.reconcile() is True
    assert haproxy.admin_states() == {"srv-a": 0, "srv-b": 0, "srv-c": 1}
    assert agent.applied_version == 5


def test_drain_mode(haproxy: Haproxy):
    agent = agent_for(haproxy, excluded_state="drain", health_source="haproxy")
    agent._latest = snapshot(2, {"a": False, "b": True, "c": True})
    assert agent.reconcile() is True
    assert haproxy.admin_states()["srv-a"] == 8  # FDRAIN


def test_a_reload_is_undone_by_the_timer(haproxy: Haproxy):
    agent = agent_for(haproxy)
    agent._latest = snapshot(3, {"a": False, "b": True, "c": True})
    agent.start()
    try:
        wait(lambda: haproxy.admin_states()["srv-a"] == 1, 3, "srv-a in maint")
        passes = agent.reconciles
        labhaproxy.reload(haproxy.proc)
        # The new worker starts from the config (srv-a ready); the next pass re-applies.
        wait(lambda: agent.reconciles > passes + 3, 5, "reconcile passes after the reload")
        wait(lambda: haproxy.admin_states() == {"srv-a": 1, "srv-b": 0, "srv-c": 0}, 5,
             "srv-a back in maint after the reload")
    finally:
        agent.stop()


def test_haproxy_down_then_back(haproxy: Haproxy):
    agent = agent_for(haproxy)
    agent._latest = snapshot(6, {"a": True, "b": True, "c": False})
    haproxy.stop()
    assert agent.reconcile() is False  # nothing to talk to: not applied, no exception
    assert agent.applied_version == 0
    haproxy.start()
    assert haproxy.admin_states()["srv-c"] == 0
    assert agent.reconcile() is True
    assert haproxy.admin_states()["srv-c"] == 1 and agent.applied_version == 6


def test_unknown_server_is_reported_not_invented(haproxy: Haproxy):
    agent = agent_for(haproxy)
    agent._latest = snapshot(2, {"a": False, "zz": False})
    assert agent.reconcile() is True  # a is applied; zz has no server to set
    assert haproxy.admin_states()["srv-a"] == 1
    with pytest.raises(HaproxyError, match="No such server"):
        haproxy.admin.set_state("be", "nope", "maint")
    with pytest.raises(HaproxyError, match="Can't find backend"):
        haproxy.admin.servers_state("nobe")
