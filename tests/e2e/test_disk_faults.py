"""Coordinators (real `vnfha coordinator` processes) on real failing disks, and restarts.

(c) A follower's ext4 is shut down (EIO): it stops acknowledging keepalives,
    its gRPC health turns NOT_SERVING, it logs a bounded number of lines and
    exits with one line naming the cause; restarted on the dead disk it exits
    again with one line, no traceback.
(d) A coordinator killed mid-burst and restarted never answers GetStatus with
    a revision or epoch older than it served before it was killed.

Root only for (c) (loop mount, tests/support_disk.py). Every loop is bounded.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import grpc
import pytest
import yaml
from cluster import CoordinatorCluster
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import wait_for
from support_disk import loop_ext4, shutdown_fs

from vnfha.v1 import agent_pb2, agent_pb2_grpc

pytestmark = pytest.mark.slow

TTL = 0.6
INTERVAL = 0.1


def set_raft_option(c: CoordinatorCluster, **options: float) -> None:
    for path in c.configs.values():
        cfg = yaml.safe_load(path.read_text())
        cfg.setdefault("raft", {}).update(options)
        path.write_text(yaml.safe_dump(cfg))


def health(api: str, service: str = "") -> int | None:
    try:
        with grpc.insecure_channel(api) as ch:
            return int(health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1.0).status)
    except grpc.RpcError:
        return None


def register(api: str, node: str) -> bool:
    try:
        with grpc.insecure_channel(api) as ch:
            agent_pb2_grpc.AgentServiceStub(ch).RegisterNode(
                agent_pb2.RegisterNodeRequest(node=node, address="198.18.0.1"), timeout=2.0)
        return True
    except grpc.RpcError:
        return False


def keepalive(api: str, node: str) -> tuple[grpc.StatusCode, str] | int:
    """One keepalive round on a fresh stream: the result enum, or (code, details)."""
    try:
        with grpc.insecure_channel(api) as ch:
            stream = agent_pb2_grpc.AgentServiceStub(ch).Keepalive(
                iter([agent_pb2.KeepaliveRequest(node=node, seq=1)]), timeout=2.0)
            return int(next(stream).result)
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


def non_leader(c: CoordinatorCluster) -> str:
    leader = wait_for(c.leader, 20, what="a leader")
    return next(cid for cid in reversed(c.ids) if cid != leader)


def test_follower_on_a_dead_disk_stops_acking_says_not_serving_and_exits(
        tmp_path: Path) -> None:
    # plaintext (insecure: true): these tests are about disks; mTLS has its own
    c = CoordinatorCluster(tmp_path, ttl=TTL, interval=INTERVAL, tls=False)
    set_raft_option(c, disk_fatal_after=2.0)
    victim = c.ids[2]
    with loop_ext4(tmp_path / "data" / victim, tmp_path / "disk.img") as mnt:
        try:
            c.start_all()
            leader = wait_for(c.leader, 20, what="a leader")
            if leader == victim:  # we want a follower: move leadership away
                c.kill(victim)
                c.start(victim)
                leader = wait_for(lambda: (lead := c.leader()) != victim and lead, 20,
                                  what="a leader other than the victim")
            api = c.api[victim]
            assert register(c.api[leader], "vm1")
            wait_for(lambda: keepalive(api, "vm1") == agent_pb2.KEEPALIVE_RESULT_ACK, 10,
                     what="the victim acknowledges before its disk dies")
            wait_for(lambda: health(api) == health_pb2.HealthCheckResponse.SERVING, 10,
                     what="the victim SERVING before its disk dies")
            log_path = tmp_path / f"{victim}.log"
            offset = log_path.stat().st_size
            shutdown_fs(mnt)
            for k in range(20):  # writes make the follower touch its disk
                register(c.api[leader], f"probe-{k}")
            wait_for(lambda: all(health(api, s) == health_pb2.HealthCheckResponse.NOT_SERVING
                                 for s in ("", "vnfha.v1.AgentService")), 10,
                     what="the victim reports NOT_SERVING")
            refused = keepalive(api, "vm1")
            assert isinstance(refused, tuple) and refused[0] == grpc.StatusCode.UNAVAILABLE, \
                refused
            proc = c.procs[victim]
            wait_for(lambda: proc.poll() is not None, 30, what="the victim exits")
            assert proc.returncode == 1
            tail = log_path.read_bytes()[offset:].decode(errors="replace")
            lines = tail.splitlines()
            assert "Traceback" not in tail, tail[-3000:]
            assert len(lines) <= 30, f"{len(lines)} lines after the disk died:\n{tail[-3000:]}"
            exiting = [ln for ln in lines if "exiting" in ln]
            assert len(exiting) == 1 and "EIO" in exiting[0] and str(mnt) in exiting[0], tail
            c.procs.pop(victim)
            # restarted on the same dead disk: one clear line, no traceback, exit 1
            offset = log_path.stat().st_size
            c.start(victim)
            proc = c.procs[victim]
            wait_for(lambda: proc.poll() is not None, 30, what="the restart on a dead disk exits")
            assert proc.returncode == 1
            tail = log_path.read_bytes()[offset:].decode(errors="replace")
            assert "Traceback" not in tail, tail[-3000:]
            errors = [json.loads(ln) for ln in tail.splitlines()
                      if ln.startswith("{") and '"ERROR"' in ln.upper()]
            assert len(errors) == 1 and "Input/output error" in json.dumps(errors[0]), tail
            c.procs.pop(victim)
            assert health(c.api[leader]) == health_pb2.HealthCheckResponse.SERVING
            assert register(c.api[leader], "after"), "the majority carries on"
        finally:
            c.stop_all()


class StatusReader:
    """Polls one coordinator's GetStatus; remembers every answer (revision, web epoch)."""

    def __init__(self, c: CoordinatorCluster, cid: str) -> None:
        self.c, self.cid = c, cid
        self.seen: list[tuple[float, int, int]] = []
        self.refusals: list[str] = []

    def poll(self, until: float, max_polls: int = 5000) -> None:
        for _ in range(max_polls):
            if time.monotonic() >= until:
                return
            try:
                st = self.c.status(self.cid, timeout=0.5)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE:
                    self.refusals.append(e.details() or "")
                time.sleep(0.02)
                continue
            epoch = next((g.epoch for g in st.groups if g.name == "web"), 0)
            self.seen.append((time.monotonic(), st.coordinator.revision, epoch))

    def max_revision(self) -> int:
        return max((r for _, r, _ in self.seen), default=0)

    def never_backwards(self) -> list[str]:
        out = []
        best_rev, best_epoch = 0, 0
        for t, rev, epoch in self.seen:
            if rev < best_rev or epoch < best_epoch:
                out.append(f"t={t:.3f}: revision {rev} < {best_rev} or epoch {epoch} < "
                           f"{best_epoch}")
            best_rev, best_epoch = max(best_rev, rev), max(best_epoch, epoch)
        return out


def test_restarted_coordinator_never_serves_older_state(tmp_path: Path) -> None:
    # plaintext (insecure: true): these tests are about disks; mTLS has its own
    c = CoordinatorCluster(tmp_path, ttl=TTL, interval=INTERVAL, tls=False)
    try:
        c.start_all()
        victim = non_leader(c)
        reader = StatusReader(c, victim)
        stop = threading.Event()

        def writer() -> None:
            for k in range(3000):
                if stop.is_set():
                    return
                lead = c.leader() or c.ids[0]
                register(c.api[lead], f"w-{k}")

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        reader.poll(time.monotonic() + 2.0)
        before = reader.max_revision()
        assert before > 0
        c.kill(victim)  # mid-burst, after it served `before`
        stop.set()
        t.join(timeout=10)
        for cid in list(c.procs):
            c.kill(cid)
        # Alone (no quorum), the restarted node must not serve the older state it
        # can rebuild from its own disk.
        first_after = len(reader.seen)
        c.start(victim)
        reader.poll(time.monotonic() + 5.0)
        stale = [s for s in reader.seen[first_after:] if s[1] < before]
        assert not stale, f"served revision {stale[0][1]} after serving {before}"
        # alone, without a quorum and behind what it served: health says so
        wait_for(lambda: health(c.api[victim]) == health_pb2.HealthCheckResponse.NOT_SERVING,
                 15, what="NOT_SERVING while alone and behind")
        stale = [s for s in reader.seen[first_after:] if s[1] < before]
        assert not stale, f"served revision {stale[0][1]} after serving {before}"
        for cid in c.ids:
            if cid != victim:
                c.start(cid)
        wait_for(lambda: (reader.poll(time.monotonic() + 0.5) or True)
                 and reader.max_revision() >= before and reader.seen[-1][1] >= before,
                 30, what="the restarted node serves again once caught up")
        assert not reader.never_backwards(), reader.never_backwards()[:5]
        wait_for(lambda: health(c.api[victim]) == health_pb2.HealthCheckResponse.SERVING, 10,
                 what="SERVING again once it has a leader and has caught up")
        assert any("catching up" in r for r in reader.refusals), reader.refusals[-3:]
    finally:
        c.stop_all()
