"""Groups declared in coordinators' config files seed the cluster; they never revert
run-time changes (issue 15: a restart silently undid `vnfha group apply`, and
coordinators with different files overwrote each other)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cluster import CoordinatorCluster
from support import wait_for

from vnfha.v1 import admin_pb2, types_pb2


@pytest.fixture(params=["raft", "etcd"])
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[CoordinatorCluster]:
    endpoint = (request.getfixturevalue("etcd_server").endpoint
                if request.param == "etcd" else None)
    c = CoordinatorCluster(tmp_path, backend=request.param, etcd_endpoint=endpoint,
                           groups=[{"name": "web", "vip": "198.18.0.100/24"}])
    try:
        c.start_all()
        yield c
    finally:
        c.stop_all()
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(c.logs())


def _rewrite_groups(cluster: CoordinatorCluster, cid: str, groups: list[dict]) -> None:
    path = cluster.configs[cid]
    cfg = yaml.safe_load(path.read_text())
    cfg["groups"] = groups
    path.write_text(yaml.safe_dump(cfg))


def test_restart_with_different_files_keeps_runtime_groups(cluster: CoordinatorCluster):
    leader = wait_for(cluster.leader, 20, what="a leader")
    ch, admin = cluster.admin(leader)
    with ch:
        admin.ApplyGroups(admin_pb2.ApplyGroupsRequest(
            groups=[admin_pb2.GroupSpec(name="web", vip="198.18.0.101/24",
                                         mode=types_pb2.GROUP_MODE_ACTIVE_STANDBY)],
            request_id="runtime-change-1"), timeout=5)
    wait_for(lambda: cluster.group(leader).vip == "198.18.0.101/24", 5,
             what="run-time change applied")
    # c2's file now disagrees about web and adds a group; c3's keeps the old web.
    _rewrite_groups(cluster, "c2", [{"name": "web", "vip": "198.18.0.102/24"},
                                    {"name": "extra", "vip": "198.18.0.103/24"}])
    cluster.stop_all()
    cluster.start_all()
    leader = wait_for(cluster.leader, 20, what="a leader after the restart")
    wait_for(lambda: cluster.group(leader, "extra") is not None, 10,
             what="the new group in c2's file seeded")
    # Every declared-groups submission has been answered once the new group exists on
    # c2's side; c1's and c3's (web only) are retried until a leader takes them, so wait
    # until all three logged their answer before judging.
    def all_answered() -> bool:
        return all("declared groups" in (cluster.root / f"{c}.log").read_text(
            errors="replace").split("coordinator serving")[-1] for c in cluster.ids)
    wait_for(all_answered, 15, what="every coordinator's declared groups answered")
    for cid in cluster.ids:
        # (retried: a channel to a just-restarted coordinator may still be backing off)
        g = wait_for(lambda cid=cid: cluster.group(cid), 5, what=f"status from {cid}")
        assert g.vip == "198.18.0.101/24", (cid, g)
    assert cluster.group(leader, "extra").vip == "198.18.0.103/24"
    c2_log = (cluster.root / "c2.log").read_text(errors="replace")
    assert "the cluster's definition is kept" in c2_log
