"""Fenced state sync end to end, in network namespaces, with the sample VNFC.

3 coordinators, 2 VMs each running an agent and the sample key-value VNFC
(agents/samples/kvstore.py) in sync mode, a client writing through the VIP.
The active is killed, partitioned, or SIGSTOPped; the standby takes over.
Checked: every write the client saw acknowledged is on the new active; the
deposed active's later sync messages, queue publishes and checkpoint writes
(sent from its VM, stamped with its old epoch) are all refused as stale.
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vnfha_lab.labcluster import KV_PORT, SYNC_PORT, LabCluster, VipChecker
from vnfha_lab.netlab import Lab

pytestmark = pytest.mark.slow

TTL = 0.3
INTERVAL = 0.075


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    with Lab() as lab:
        c = LabCluster(lab, tmp_path, ttl=TTL, interval=INTERVAL)
        try:
            c.start_pair()
            c.start_kvstore("vm1")
            c.start_kvstore("vm2")
            c.wait(lambda: c.vip_holders() == {"vm1"}, 10, "the VIP on vm1")
            c.wait(lambda: put(c, c.vip_addr, "warmup", "1")[0] == 200, 15,
                   "a write acknowledged by vm1 and its standby")
            yield c
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(c.logs_tail(30), file=sys.stderr)
        finally:
            c.close()


def http_call(c: LabCluster, host: str, method: str, path: str, body: str | None = None,
              timeout: float = 2.0) -> tuple[int, Any]:
    """One HTTP request from the client namespace (0 = no answer)."""
    def call() -> tuple[int, Any]:
        conn = http.client.HTTPConnection(host, KV_PORT, timeout=timeout)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
        except (OSError, http.client.HTTPException):
            return 0, None
        finally:
            conn.close()
    return c.hosts["client"].call(call, timeout=timeout + 5)


def put(c: LabCluster, host: str, key: str, value: str) -> tuple[int, Any]:
    return http_call(c, host, "PUT", f"/kv/{key}", value)


class Writer:
    """Writes k0, k1, ... through the VIP one at a time; remembers what was acknowledged."""

    def __init__(self, c: LabCluster, max_seconds: float = 30.0) -> None:
        self.c = c
        self.acked: dict[str, tuple[str, int]] = {}  # key -> (value, epoch)
        self.failed = 0
        self.stop = threading.Event()
        self.max_seconds = max_seconds
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + self.max_seconds
        i = 0
        while not self.stop.is_set() and time.monotonic() < end and i < 20000:
            key, value = f"k{i}", f"v{i}"
            code, body = put(self.c, self.c.vip_addr, key, value)
            if code == 200:
                self.acked[key] = (value, body["epoch"])
            else:
                self.failed += 1
                time.sleep(0.01)
            i += 1

    def acked_at(self, epoch: int) -> int:
        return sum(1 for _, e in list(self.acked.values()) if e == epoch)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def stale_probe(c: LabCluster, vm: str, epoch: int, count: int = 3) -> dict[str, dict[str, int]]:
    """Sync, publish and checkpoint as `epoch`, from `vm` (where the deposed active ran)."""
    other = next(o for o in c.vms if o != vm)
    r = c.hosts[vm].run([sys.executable, "-m", "vnfha.agents.samples.kvstore", "stale-probe",
                         "--group", "web", "--epoch", str(epoch), "--count", str(count),
                         "--peer", f"{c.hosts[other].ip4}:{SYNC_PORT}", "--sequence", "1",
                         "--coordinators", ",".join(c.api[x] for x in c.cids),
                         *c.tls_args(f"node/{vm}", c.hosts[vm].ip4)], timeout=60)
    return json.loads(r.stdout.strip().splitlines()[-1])


def kv_status(c: LabCluster, vm: str) -> dict[str, Any] | None:
    code, st = http_call(c, c.hosts[vm].ip4, "GET", "/status", timeout=1)
    return st if code == 200 else None


def check_failover(c: LabCluster, fault: Callable[[], None],
                   recover: Callable[[], None]) -> None:
    """Write, fault, wait for the takeover, bring the old VM back (it rejoins as the
    standby: sync mode acknowledges nothing without one), write more, then check."""
    checker = VipChecker(c).start()
    with Writer(c) as w:
        c.wait(lambda: w.acked_at(1) >= 20, 15, "writes acknowledged at epoch 1")
        fault()
        c.wait(lambda: (st := kv_status(c, "vm2")) and st["role"] == "active", 15,
               "vm2's VNFC acting as active")
        recover()
        c.wait(lambda: w.acked_at(2) >= 20, 20, "writes acknowledged by the new active")
    assert c.group().active == "web-2" and c.group().epoch == 2
    log = checker.stop()
    assert log.max_live_holders <= 1, log.dual_windows()
    # Every acknowledged write is on the new active, with its value.
    code, data = http_call(c, c.vip_addr, "GET", "/kv", timeout=2)
    assert code == 200
    missing = {k: v for k, (v, _) in w.acked.items() if data.get(k) != v}
    assert not missing, f"{len(missing)} acknowledged writes lost: {sorted(missing)[:10]}"
    assert w.acked_at(1) >= 20 and w.acked_at(2) >= 20
    # The deposed active's later messages: the store no longer lets its node write at
    # all (it does not host the active), and the new active's receiver refuses them as
    # stale.
    probe = stale_probe(c, "vm1", epoch=1)
    for kind in ("sync", "publish", "checkpoint"):
        assert probe[kind]["attempted"] > 0, probe
    assert probe["sync"].get("stale_epoch", 0) == probe["sync"]["attempted"], probe
    for kind in ("publish", "checkpoint"):
        assert probe[kind].get("permission_denied", 0) == probe[kind]["attempted"], probe
    # ...and nothing of theirs landed.
    code, after_probe = http_call(c, c.vip_addr, "GET", "/kv", timeout=2)
    assert code == 200 and "zombie" not in after_probe
    code, st = http_call(c, c.vip_addr, "GET", "/status", timeout=2)
    assert st["role"] == "active" and st["epoch"] == 2
    assert st["receiver"]["refused"].get("stale_epoch", 0) >= probe["sync"]["attempted"]


def test_killed_active_loses_no_acknowledged_write(cluster: LabCluster):
    c = cluster

    def fault() -> None:  # the VNFC and its agent die; the VM's network stays up
        c.kill("vm1-kv")
        c.kill("vm1-agent")

    def restart() -> None:  # as a VNF manager would: it rejoins as the standby
        c.start_agent("vm1", 200)
        c.start_kvstore("vm1")

    check_failover(c, fault, restart)
    st = kv_status(c, "vm1")
    assert st is not None and st["role"] == "standby" and st["receiver"]["synced"]


def test_partitioned_active_loses_no_acknowledged_write(cluster: LabCluster):
    c = cluster

    check_failover(c, lambda: c.lab.cut(c.hosts["vm1"]), c.lab.heal)
    # The deposed VNFC itself, back in touch, refuses writes (its lease is gone).
    code, body = put(c, c.hosts["vm1"].ip4, "late", "x")
    assert code == 503 and "not active" in body["error"]


def test_sigstopped_active_loses_no_acknowledged_write(cluster: LabCluster):
    c = cluster
    stopped: list[float] = []

    def fault() -> None:  # the whole VNFC side freezes: agent and VNFC
        stopped.append(c.signal("vm1-agent", signal.SIGSTOP))
        c.signal("vm1-kv", signal.SIGSTOP)

    def wake() -> None:
        time.sleep(max(0.0, 3 * TTL - (time.time() - stopped[0])))
        c.signal("vm1-kv", signal.SIGCONT)
        c.signal("vm1-agent", signal.SIGCONT)

    check_failover(c, fault, wake)
    code, st = http_call(c, c.hosts["vm1"].ip4, "GET", "/status", timeout=2)
    assert code == 200 and st["role"] == "standby"
    assert put(c, c.hosts["vm1"].ip4, "late", "x")[0] == 503


def test_forged_future_epoch_is_refused_everywhere(cluster: LabCluster):
    c = cluster
    code, before = http_call(c, c.vip_addr, "GET", "/kv", timeout=2)
    assert code == 200
    probe = stale_probe(c, "vm2", epoch=99, count=2)  # the standby's VM lies
    for kind in ("publish", "checkpoint"):  # it may not write the group's state at all
        assert probe[kind].get("permission_denied", 0) == probe[kind]["attempted"] > 0, probe
    # The active's own VM, with a forged future epoch: authorized, refused by the fence.
    own = stale_probe(c, "vm1", epoch=99, count=2)
    for kind in ("publish", "checkpoint"):
        assert own[kind].get("future_epoch", 0) == own[kind]["attempted"] > 0, own
    # vm2 is the standby; its probe targets vm1's receiver: the active refuses it too.
    assert probe["sync"].get("future_epoch", 0) == probe["sync"]["attempted"] > 0, probe
    code, after = http_call(c, c.vip_addr, "GET", "/kv", timeout=2)
    assert code == 200 and after == before
    assert put(c, c.vip_addr, "still", "works")[0] == 200
