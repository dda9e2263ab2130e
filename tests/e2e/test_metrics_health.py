"""/readyz and the store gauges of three Raft coordinators (separate processes) as
quorum is lost and comes back: the survivor turns not ready while it has no quorum,
and every coordinator is ready again once the others return."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cluster import CoordinatorCluster
from prometheus_client.parser import text_string_to_metric_families
from support import free_port, wait_for

pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:  # not listening (yet, or any more)
        return 0, str(e)


def gauge(base: str, name: str) -> float | None:
    code, text = get(base + "/metrics")
    if code != 200:
        return None
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and not s.labels:
                return s.value
    return None


def with_metrics(c: CoordinatorCluster) -> dict[str, str]:
    """Add a loopback metrics listener to each coordinator's config; their base URLs."""
    urls = {}
    for cid, path in c.configs.items():  # add a metrics listener to each config
        cfg = yaml.safe_load(path.read_text())
        port = free_port()
        cfg["metrics"] = {"listen": f"127.0.0.1:{port}"}
        path.write_text(yaml.safe_dump(cfg))
        urls[cid] = f"http://127.0.0.1:{port}"
    return urls


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[CoordinatorCluster, dict[str, str]]]:
    c = CoordinatorCluster(tmp_path)
    urls = with_metrics(c)
    try:
        c.start_all()
        yield c, urls
    finally:
        c.stop_all()


def test_readyz_follows_quorum(cluster):
    c, urls = cluster
    for cid in c.ids:
        wait_for(lambda cid=cid: get(urls[cid] + "/readyz")[0] == 200, 10,
                 what=f"{cid} ready")
        assert get(urls[cid] + "/livez")[0] == 200
    leader = c.leader()
    assert leader is not None
    assert gauge(urls[leader], "vnfha_store_leader") == 1
    assert gauge(urls[leader], "vnfha_raft_term") >= 1

    survivor, *others = c.ids
    for cid in others:
        c.kill(cid)
    _, body = wait_for(lambda: (r := get(urls[survivor] + "/readyz"))[0] == 503 and r,
                          15, interval=0.1, what="the survivor not ready without a quorum")
    assert "no quorum: in contact with 1 of 3" in body
    assert get(urls[survivor] + "/livez")[0] == 200  # alive, just not ready
    assert gauge(urls[survivor], "vnfha_coordinator_ready") == 0
    # pysyncobj keeps an isolated follower's last leader, so "leader known" cannot say
    # this (store/raft.py voters_in_contact); the contact count does.
    assert gauge(urls[survivor], "vnfha_raft_voters_in_contact") == 1

    for cid in others:
        c.start(cid)
    for cid in c.ids:
        wait_for(lambda cid=cid: get(urls[cid] + "/readyz")[0] == 200, 20,
                 what=f"{cid} ready again")
    assert sum(gauge(urls[cid], "vnfha_store_leader") or 0 for cid in c.ids) == 1


def test_etcd_backed_coordinators_export_store_facts(tmp_path: Path, etcd_server):
    c = CoordinatorCluster(tmp_path, backend="etcd", etcd_endpoint=etcd_server.endpoint)
    urls = with_metrics(c)
    try:
        c.start_all()
        for cid in c.ids:
            wait_for(lambda cid=cid: get(urls[cid] + "/readyz")[0] == 200, 10,
                     what=f"{cid} ready")
            assert gauge(urls[cid], "vnfha_store_reachable") == 1
            assert gauge(urls[cid], "vnfha_etcd_revision") > 0
            assert gauge(urls[cid], "vnfha_raft_voters_in_contact") is None
        assert sum(gauge(urls[cid], "vnfha_store_leader") or 0 for cid in c.ids) == 1
    finally:
        c.stop_all()
