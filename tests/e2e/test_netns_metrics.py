"""A real Prometheus scrapes a namespace cluster through a crash failover.

Topology: lab/vnfha_lab/labcluster.py (3 coordinators, 2 VMs, a client host), every
coordinator and agent with its metrics listener on its lab address over TLS with
client certificates; Prometheus (the Debian package's binary) runs in the client
host and scrapes all five with its own client certificate. vm1 (active) crashes:
its link goes down and its processes are killed. Prometheus must then show
exactly one failover (cause lost, counted by the leader only), a detection and a
commit duration observed, the new active on every coordinator and on vm2's agent
(VIP held, claim time observed), and a new epoch.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pki import make_pki

from vnfha_lab.labcluster import LabCluster
from vnfha_lab.netlab import Lab

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None,
                       reason="needs the prometheus binary (scripts/setup.sh installs it)"),
]

TTL = 0.3
INTERVAL = 0.075
COORD_PORT = 9401
AGENT_PORT = 9402
PROM_PORT = 9090


class MetricsLab(LabCluster):
    """The lab cluster with a TLS metrics listener on every coordinator and agent."""

    def __init__(self, lab: Lab, root: Path, **kw: Any) -> None:
        super().__init__(lab, root, **kw)
        ips = [h.ip4 for h in self.hosts.values() if h.ip4]
        # (its own folder: LabCluster keeps the mTLS lab CA in root/pki)
        (root / "metrics-pki").mkdir()
        self.metrics_pki = make_pki(root / "metrics-pki", server_ips=ips)

    def _metrics(self, host: str, port: int) -> dict[str, Any]:
        return {"listen": f"{self.hosts[host].ip4}:{port}", "tls": {
            "cert_file": str(self.metrics_pki / "server.pem"),
            "key_file": str(self.metrics_pki / "server.key"),
            "ca_file": str(self.metrics_pki / "ca.pem")}}

    def start_coordinator(self, cid: str) -> None:
        self.coordinator_extra = {"metrics": self._metrics(cid, COORD_PORT)}
        super().start_coordinator(cid)

    def agent_config(self, vm: str, priority: int) -> dict[str, Any]:
        return {**super().agent_config(vm, priority), "metrics": self._metrics(vm, AGENT_PORT)}

    def start_prometheus(self) -> str:
        """Prometheus in the client host; returns its base URL (reachable from the lab)."""
        tls = {"ca_file": str(self.metrics_pki / "ca.pem"),
               "cert_file": str(self.metrics_pki / "client.pem"),
               "key_file": str(self.metrics_pki / "client.key")}
        cfg = {
            "global": {"scrape_interval": "250ms", "scrape_timeout": "200ms"},
            "scrape_configs": [
                {"job_name": "coordinators", "scheme": "https", "tls_config": tls,
                 "static_configs": [{"targets": [f"{self.hosts[c].ip4}:{COORD_PORT}"
                                                 for c in self.cids]}]},
                {"job_name": "agents", "scheme": "https", "tls_config": tls,
                 "static_configs": [{"targets": [f"{self.hosts[v].ip4}:{AGENT_PORT}"
                                                 for v in self.vms]}]},
            ],
        }
        path = self.root / "prometheus.yml"
        path.write_text(yaml.safe_dump(cfg))
        listen = f"{self.hosts['client'].ip4}:{PROM_PORT}"
        self._spawn("prometheus", "client", [
            "prometheus", f"--config.file={path}", f"--storage.tsdb.path={self.root / 'tsdb'}",
            f"--web.listen-address={listen}", "--log.level=warn"])
        return f"http://{listen}"


def query(cluster: MetricsLab, base: str, promql: str) -> list[dict[str, Any]]:
    """An instant query, sent from inside the client host (the lab is not routed)."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})

    def get() -> Any:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.load(r)

    body = cluster.hosts["client"].call(get, timeout=5)
    assert body["status"] == "success", body
    return body["data"]["result"]


def scalar(cluster: MetricsLab, base: str, promql: str) -> float | None:
    """The single value of `promql`, None when it has no series (or Prometheus is not up)."""
    try:
        result = query(cluster, base, promql)
    except OSError:
        return None
    return float(result[0]["value"][1]) if len(result) == 1 else None


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[MetricsLab, str]]:
    with Lab() as lab:
        c = MetricsLab(lab, tmp_path, ttl=TTL, interval=INTERVAL)
        try:
            c.start_pair()
            c.wait(lambda: c.vip_holders() == {"vm1"}, 10, "the VIP on vm1")
            base = c.start_prometheus()
            yield c, base
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(c.logs_tail(25), file=sys.stderr)
        finally:
            c.close()


def sel(name: str, **labels: str) -> str:
    """A PromQL selector: sel("up", job="agents") -> up{job="agents"}."""
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def test_prometheus_sees_a_crash_failover(cluster):
    c, base = cluster
    c.wait(lambda: scalar(c, base, "count(up == 1)") == 5, 20,
           "Prometheus scraping 3 coordinators and 2 agents over TLS")

    def active(member: str) -> str:
        return sel("vnfha_member_role", group="web", member=member, role="active")

    c.wait(lambda: scalar(c, base, f"min({active('web-1')})") == 1, 10,
           "every coordinator reporting web-1 active")
    epoch_before = scalar(c, base, 'max(vnfha_group_epoch{group="web"})')
    assert epoch_before is not None and epoch_before >= 1
    assert scalar(c, base, 'sum(vnfha_failovers_total{group="web"})') is None  # none yet
    assert scalar(c, base, 'vnfha_agent_vip_held{job="agents",group="web"} == 1') == 1
    assert scalar(c, base, "sum(vnfha_store_leader)") == 1
    assert scalar(c, base, "count(vnfha_raft_term >= 1)") == 3
    assert scalar(c, base, "min(vnfha_raft_applied_index)") >= 1
    assert scalar(c, base, "min(vnfha_coordinator_ready)") == 1

    c.crash_vm("vm1")
    c.wait_active("web-2", 10)

    c.wait(lambda: scalar(c, base, 'sum(vnfha_failovers_total{group="web",cause="lost"})')
           == 1, 10, "the failover counted once, cause lost")
    c.wait(lambda: scalar(c, base, f"min({active('web-2')})") == 1, 10,
           "every coordinator reporting web-2 active")
    assert scalar(c, base, f"max({active('web-1')})") == 0
    # Detection: at least one TTL of silence; commit: observed once, after it.
    assert scalar(c, base, 'sum(vnfha_failover_detection_seconds_count{cause="lost"})') == 1
    assert scalar(c, base, 'sum(vnfha_failover_detection_seconds_sum{cause="lost"})') >= TTL
    assert scalar(c, base, 'sum(vnfha_failover_commit_seconds_count{cause="lost"})') == 1
    assert scalar(c, base, 'max(vnfha_group_epoch{group="web"})') == epoch_before + 1
    assert scalar(c, base, 'sum(vnfha_switchovers_total{group="web"})') is None
    assert scalar(c, base, 'max(vnfha_member_health{group="web",member="web-1",'
                           'health="lost"})') == 1
    # vm2's agent: active, VIP in its kernel, the claim timed; vm1 is gone from the scrape.
    vm2 = f"{c.hosts['vm2'].ip4}:{AGENT_PORT}"
    c.wait(lambda: scalar(c, base, sel("vnfha_agent_member_role", instance=vm2,
                                       role="active")) == 1,
           5, "vm2's agent acting as active")
    # The three move in one role change but not in one instant (the role first, the
    # claim timing last): a scrape between them is a consistent picture of a moment.
    c.wait(lambda: scalar(c, base, sel("vnfha_agent_vip_held", instance=vm2)) == 1
           and (scalar(c, base, sel("vnfha_agent_vip_claim_seconds_count", instance=vm2))
                or 0) >= 1, 5, "vm2's VIP held and its claim timed")
    assert scalar(c, base, sel("vnfha_agent_ready", instance=vm2)) == 1
    assert scalar(c, base, sel("up", instance=f"{c.hosts['vm1'].ip4}:{AGENT_PORT}")) == 0
