"""A coordinator whose etcd watch breaks resumes it from the last revision it saw,
instead of reading the whole prefix again (at 5,000 groups a full read is ~2 MB to
decode, and a loaded coordinator whose session kept failing did nothing else).
Against a real etcd that is restarted under the coordinator."""

from __future__ import annotations

from pathlib import Path

from support import wait_for

from vnfha.coordinator import commands as C
from vnfha.coordinator.store.etcd import EtcdStore
from vnfha.coordinator.store.etcd_client import EtcdClient
from vnfha.coordinator.store.etcd_config import EtcdSettings
from vnfha_lab.etcdserver import EtcdServer


class CountingReads(EtcdClient):
    """Counts full reads of the prefix (range requests with a range end)."""

    full_reads = 0

    def range(self, key, range_end, timeout, count_only=False):  # type: ignore[override]
        if range_end and not count_only:
            CountingReads.full_reads += 1
        return super().range(key, range_end, timeout, count_only)


def test_a_broken_watch_resumes_from_its_revision_without_a_full_read(tmp_path: Path):
    server = EtcdServer(tmp_path / "data")
    server.start()
    settings = EtcdSettings(endpoints=(server.endpoint,), prefix="/resume", session_ttl=5)
    follower = EtcdStore("c2", settings, client_factory=CountingReads)
    writer = EtcdStore("c1", settings)
    try:
        writer.start()
        follower.start()
        assert writer.submit(C.apply_groups([{"name": "g1"}]), timeout=10)["ok"]
        wait_for(lambda: "g1" in follower.state().groups, timeout=10, what="g1 on c2")
        reads = CountingReads.full_reads
        assert reads >= 1
        # etcd restarts on the same data: every stream breaks, the history stays
        server.stop()
        server.start()
        wait_for(lambda: writer.submit(C.apply_groups([{"name": "g2"}]), timeout=2)["ok"],
                 timeout=30, what="a write after the etcd restart")
        wait_for(lambda: "g2" in follower.state().groups, timeout=30, what="g2 on c2")
        assert CountingReads.full_reads == reads  # resumed, not re-read
        assert follower.read_gate() is None and follower.store_reachable()
    finally:
        follower.stop()
        writer.stop()
        server.stop()
