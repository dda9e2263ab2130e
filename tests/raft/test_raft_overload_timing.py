"""Raft timing while the coordinator is overloaded (issue 14): under test_overload's CPU
budget a node's threads waited 0.5-2.2 s for CPU, a vote's round trip outlasted the
0.3-0.6 s election timeout, terms rose by about two a second and the cluster went
7-70 s without a leader, deciding nothing. While overloaded, each node's election
timeouts and leader fallback are stretched (settings.OVERLOAD_TIMING_STRETCH); they
bound only how soon an election starts or a leader gives up, never what is safe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raft_helpers import cluster_settings, submit_retry, wait_for, wait_leader

from vnfha.coordinator.raft import RaftSettings
from vnfha.coordinator.raft.settings import OVERLOAD_TIMING_STRETCH


def conf_timing(log: Any) -> tuple[float, float, float]:
    conf = log._core._SyncObj__conf
    return conf.raftMinTimeout, conf.raftMaxTimeout, conf.leaderFallbackTimeout


def test_timing_is_stretched_whole_and_never_shortened(tmp_path: Path) -> None:
    s = RaftSettings("127.0.0.1:7001", (), tmp_path)
    base = (s.election_timeout_min, s.election_timeout_max, s.fallback_timeout)
    assert s.timing() == base
    assert s.timing(4.0) == tuple(4.0 * t for t in base)
    assert s.timing(0.5) == base  # never shorter than configured
    assert OVERLOAD_TIMING_STRETCH > 1


def test_an_overloaded_cluster_runs_on_stretched_timing_and_still_elects(
        tmp_path: Path, make_log: Any) -> None:
    settings = cluster_settings(tmp_path, 3)
    logs = [make_log(s) for s in settings]
    base = settings[0].timing()
    stretch = [1.0]
    for lg in logs:
        lg.timing_stretch = lambda: stretch[0]
    leader = wait_leader(logs)
    assert all(conf_timing(lg) == base for lg in logs)
    stretch[0] = OVERLOAD_TIMING_STRETCH  # every coordinator overloaded
    wanted = settings[0].timing(OVERLOAD_TIMING_STRETCH)
    wait_for(lambda: all(conf_timing(lg) == wanted for lg in logs), 5,
             "the stretched timing on every node")
    # Liveness holds on the stretched timing: the leader goes, the others elect.
    leader.stop()
    rest = [lg for lg in logs if lg is not leader]
    new = wait_leader(rest, timeout=20)
    assert new is not leader
    assert submit_retry(rest[0], {"rid": "after"}, total=15)["epoch"] >= 1
    stretch[0] = 1.0  # the overload is over: the configured timing again
    wait_for(lambda: all(conf_timing(lg) == base for lg in rest), 5, "the timing restored")
