"""Coordinator metrics over fixed states, the failover meter's accounting, the
`metrics:` config rules, and the HTTP listener (plain and TLS with client certs)."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pki import make_pki
from prometheus_client import CollectorRegistry, generate_latest
from support import free_port

from vnfha.coordinator import commands as C
from vnfha.coordinator.config import ConfigError, parse_config
from vnfha.coordinator.metrics import FailoverMeter, demote_cause, ready, state_metrics
from vnfha.coordinator.metrics_config import MetricsConfig, MetricsTls
from vnfha.coordinator.metrics_http import MetricsServer
from vnfha.coordinator.model import (
    Checkpoint,
    ClusterState,
    Event,
    Group,
    GroupMode,
    GroupQueue,
    Health,
    Member,
    Node,
    Recovery,
)
from vnfha.coordinator.store.base import Store

ONE: dict[str, Any] = {
    "node_id": "c1",
    "cluster": {"members": [{"id": "c1", "api": "127.0.0.1:7401", "raft": "127.0.0.1:7501"}]},
}


def samples(metrics: list[Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in metrics for s in fam.samples}


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def two_groups() -> ClusterState:
    web = Group(name="web", epoch=5, active=None, releasing="m1", members={
        "m1": Member("m1", "web", "vm1", health=Health.UNHEALTHY, quarantined=True),
        "m2": Member("m2", "web", "vm2", health=Health.HEALTHY)})
    api = Group(name="api", mode=GroupMode.ACTIVE_ACTIVE, pool=frozenset({"a1"}), pool_version=7,
                lb_applied={"lb1": 6}, members={
                    "a1": Member("a1", "api", "vm1", health=Health.HEALTHY),
                    "a2": Member("a2", "api", "vm2", health=Health.LOST)},
                recoveries={"a2": Recovery("a2", "vm2", failure=7, reason="lost",
                                           status="requested", attempts=2)})
    return ClusterState(revision=42, groups={"web": web, "api": api},
                        nodes={"vm1": Node("vm1"), "vm2": Node("vm2", maintenance=True)},
                        checkpoints={"web": Checkpoint(epoch=4, version=9, data=b"x")},
                        queues={"web": GroupQueue(next_offset=12, size=300)})


def test_state_metrics_show_roles_health_epochs_pools_and_leases():
    s = samples(state_metrics(two_groups(), {"vm1": 0.2, "vm2": 3.5}))
    # A demoted active that has not let go is "releasing", nobody is active.
    assert s[key("vnfha_member_role", group="web", member="m1", node="vm1",
                 role="releasing")] == 1
    assert s[key("vnfha_member_role", group="web", member="m1", node="vm1", role="active")] == 0
    assert s[key("vnfha_member_role", group="web", member="m2", node="vm2", role="standby")] == 1
    assert s[key("vnfha_group_has_active", group="web")] == 0
    assert s[key("vnfha_group_epoch", group="web")] == 5
    assert s[key("vnfha_member_health", group="web", member="m1", node="vm1",
                 health="unhealthy")] == 1
    assert s[key("vnfha_member_health", group="web", member="m1", node="vm1",
                 health="healthy")] == 0
    assert s[key("vnfha_member_quarantined", group="web", member="m1", node="vm1")] == 1
    # Active-active: "active" means in the pool; pool version and LB progress.
    assert s[key("vnfha_member_active", group="api", member="a1", node="vm1")] == 1
    assert s[key("vnfha_member_active", group="api", member="a2", node="vm2")] == 0
    assert s[key("vnfha_pool_version", group="api")] == 7
    assert s[key("vnfha_pool_members", group="api")] == 1
    assert s[key("vnfha_lb_pool_version_applied", group="api", lb="lb1")] == 6
    assert s[key("vnfha_recovery_attempts", group="api", member="a2", status="requested")] == 2
    assert key("vnfha_group_has_active", group="api") not in s
    assert s[key("vnfha_node_lease_age_seconds", node="vm2")] == 3.5
    assert s[key("vnfha_node_maintenance", node="vm2")] == 1
    assert s[key("vnfha_state_revision")] == 42
    assert s[key("vnfha_checkpoint_version", group="web")] == 9
    assert s[key("vnfha_checkpoint_epoch", group="web")] == 4  # written before epoch 5
    assert s[key("vnfha_queue_next_offset", group="web")] == 12
    assert s[key("vnfha_queue_retained_bytes", group="web")] == 300


def test_state_metrics_after_promotion_name_the_new_active():
    st = two_groups()
    web = replace(st.groups["web"], active="m2", releasing=None, epoch=6)
    s = samples(state_metrics(replace(st, groups={**st.groups, "web": web}), {}))
    assert s[key("vnfha_member_role", group="web", member="m2", node="vm2", role="active")] == 1
    assert s[key("vnfha_member_active", group="web", member="m2", node="vm2")] == 1
    assert s[key("vnfha_member_role", group="web", member="m1", node="vm1", role="standby")] == 1
    assert s[key("vnfha_group_epoch", group="web")] == 6
    assert s[key("vnfha_group_has_active", group="web")] == 1


class FakeStore:
    """Only the leadership facts the base rule (`Store.not_ready_reason`) reads."""

    def __init__(self, leader: str | None, reachable: bool) -> None:
        self.leader, self.reachable = leader, reachable

    def leader_id(self) -> str | None:
        return self.leader

    def store_reachable(self) -> bool:
        return self.reachable

    def read_gate(self) -> str | None:
        return None

    def not_ready_reason(self) -> str | None:
        return Store.not_ready_reason(self)  # type: ignore[arg-type]


class FakeRaftStore(FakeStore):
    """A Raft store whose own rule says it is cut off (RaftStore.not_ready_reason: a
    leader remembered by pysyncobj while in contact with no majority is no leader)."""

    def not_ready_reason(self) -> str | None:
        return "no quorum: in contact with 1 of 3 raft voters"


def test_ready_is_the_stores_own_rule_the_same_as_grpc_health():
    # /readyz and gRPC health (server.py) answer from one rule: Store.not_ready_reason.
    ok, why = ready(FakeRaftStore("c2", True))  # type: ignore[arg-type]
    assert not ok and why == "no quorum: in contact with 1 of 3 raft voters"


@pytest.mark.parametrize("leader,reachable,ok,why", [
    ("c2", True, True, "leader c2"),
    (None, True, False, "no leader"),
    ("c2", False, False, "store unreachable"),
])
def test_ready_needs_a_leader_and_the_store(leader, reachable, ok, why):
    got_ok, got_why = ready(FakeStore(leader, reachable))  # type: ignore[arg-type]
    assert got_ok == ok and why in got_why


# --------------------------------------------------------------------------- failover meter


def active_group(active: str = "m1", epoch: int = 1, events: tuple[Event, ...] = ()
                 ) -> ClusterState:
    g = Group(name="web", epoch=epoch, active=active, members={
        "m1": Member("m1", "web", "vm1"), "m2": Member("m2", "web", "vm2")})
    return ClusterState(groups={"web": g}, events=events)


def counts(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def test_meter_counts_a_lost_active_with_detection_and_commit_times():
    reg = CollectorRegistry()
    meter = FailoverMeter(reg)
    st = active_group()
    meter.round(st, [], {}, now=10.0)
    meter.round(st, ["vm1"], {"vm1": 10.0}, now=10.7)  # confirmed lost 0.7 s after last heard
    meter.round(st, ["vm1"], {"vm1": 10.0}, now=10.8)  # still lost: not observed again
    cmd = C.promote("web", "m2", 1, reason="active m1 lost (lease expired)")
    cmd["replace"] = "m1"
    meter.committed(cmd, st, now=10.85)
    assert counts(reg, "vnfha_failovers_total", group="web", cause="lost") == 1
    assert counts(reg, "vnfha_failover_detection_seconds_count", cause="lost") == 1
    assert counts(reg, "vnfha_failover_detection_seconds_sum", cause="lost") == pytest.approx(0.7)
    assert counts(reg, "vnfha_failover_commit_seconds_sum", cause="lost") == pytest.approx(0.15)
    assert counts(reg, "vnfha_switchovers_total", group="web", cause="switchover") is None


def test_meter_times_an_unhealthy_active_from_its_demotion_to_the_promotion():
    reg = CollectorRegistry()
    meter = FailoverMeter(reg)
    st = active_group()
    meter.committed(C.demote("web", 1, reason="active m1 unhealthy", quarantine=True,
                             handover_to="m2"), st, now=5.0)
    demoted = replace(st.groups["web"], active=None, releasing="m1", epoch=2)
    meter.round(replace(st, groups={"web": demoted}), [], {}, now=5.1)  # already tracked
    meter.committed(C.promote("web", "m2", 2, reason="planned switchover"), st, now=5.4)
    assert counts(reg, "vnfha_failovers_total", group="web", cause="unhealthy") == 1
    assert counts(reg, "vnfha_failover_commit_seconds_sum",
                  cause="unhealthy") == pytest.approx(0.4)
    assert counts(reg, "vnfha_switchovers_total", group="web", cause="switchover") is None


def test_meter_counts_a_switchover_demoted_elsewhere_from_when_it_saw_it():
    reg = CollectorRegistry()
    meter = FailoverMeter(reg)
    ev = Event(seq=9, at=0.0, kind="demoted", group="web", member="m1", epoch=2,
               reason="planned switchover (handing over to m2)")
    st = active_group(events=(ev,))
    st = replace(st, groups={"web": replace(st.groups["web"], active=None, releasing="m1",
                                            epoch=2, handover_to="m2")})
    meter.round(st, [], {}, now=1.0)
    meter.committed(C.promote("web", "m2", 2, reason="planned switchover"), st, now=1.25)
    assert counts(reg, "vnfha_switchovers_total", group="web", cause="switchover") == 1
    assert counts(reg, "vnfha_failover_commit_seconds_sum",
                  cause="switchover") == pytest.approx(0.25)
    assert counts(reg, "vnfha_failovers_total", group="web", cause="lost") is None


def test_meter_calls_a_first_promotion_an_election():
    reg = CollectorRegistry()
    meter = FailoverMeter(reg)
    st = active_group(active=None, epoch=0)  # type: ignore[arg-type]
    meter.committed(C.promote("web", "m1", 0, reason="no active member"), st, now=1.0)
    assert counts(reg, "vnfha_elections_total", group="web") == 1
    assert b"vnfha_failovers_total{" not in generate_latest(reg)


def test_meter_forgets_a_node_heard_again():
    reg = CollectorRegistry()
    meter = FailoverMeter(reg)
    st = active_group()
    meter.round(st, ["vm1"], {"vm1": 0.0}, now=1.0)
    meter.round(st, [], {}, now=1.1)  # heard again
    meter.round(st, ["vm1"], {"vm1": 4.0}, now=5.0)  # a second, separate loss
    assert counts(reg, "vnfha_failover_detection_seconds_count", cause="lost") == 2
    assert counts(reg, "vnfha_failover_detection_seconds_sum", cause="lost") == pytest.approx(2.0)


@pytest.mark.parametrize("reason,cause", [
    ("planned switchover (handing over to m2)", "switchover"),
    ("node vm1 in maintenance", "maintenance"),
    ("node vm1 stopping", "drain"),
    ("node vm1 stopping (handing over to m2)", "drain"),
    ("active m1 unhealthy", "unhealthy"),
    ("active m1 lost and no eligible standby", "lost"),
])
def test_demote_causes_follow_the_reasons_decide_writes(reason, cause):
    assert demote_cause(reason) == cause


# --------------------------------------------------------------------------- config


def test_metrics_are_off_unless_listen_is_set():
    assert parse_config(ONE).metrics == MetricsConfig()
    c = parse_config({**ONE, "metrics": {"listen": "127.0.0.1:9401"}})
    assert c.metrics.listen == "127.0.0.1:9401" and c.metrics.tls is None


@pytest.mark.parametrize("section,message", [
    ({"listen": "198.18.0.1:9401"},
     r"metrics\.listen \(198\.18\.0\.1:9401\) is not a loopback address: set metrics\.tls"),
    ({"listen": "0.0.0.0:9401"}, r"is not a loopback address"),
    ({"listen": 9401}, r"metrics\.listen must be a 'host:port' string, got an integer"),
    ({"listen": "127.0.0.1:99999"}, r"metrics\.listen .*port '99999' must be a number"),
    ({"listen": "127.0.0.1:9401", "tls": {"cert_file": "/nonexistent.pem",
                                          "key_file": "/nonexistent.key"}},
     r"metrics\.tls\.cert_file \(/nonexistent\.pem\) does not exist"),
    ({"listen": "127.0.0.1:9401", "tls": {"cert_file": "/etc/hostname"}},
     r"metrics\.tls\.key_file is required"),
    ({"tls": {}}, r"metrics\.tls is set but metrics\.listen is not"),
    ({"listen": "127.0.0.1:9401", "port": 1}, r"metrics.*port"),
])
def test_bad_metrics_settings_fail_with_their_name(section, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**ONE, "metrics": section}, source="c1.yaml")


# --------------------------------------------------------------------------- HTTP listener


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return make_pki(tmp_path)


def _get(url: str, ctx: ssl.SSLContext | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_listener_serves_metrics_and_checks_and_nothing_else():
    reg = CollectorRegistry()
    FailoverMeter(reg).elections.labels("web").inc()
    state = {"ready": (True, "leader c1")}
    srv = MetricsServer(MetricsConfig(listen=f"127.0.0.1:{free_port()}"), reg,
                        live=lambda: (True, "running"), ready=lambda: state["ready"])
    srv.start()
    try:
        base = f"http://127.0.0.1:{srv.port}"
        code, body = _get(base + "/metrics")
        assert code == 200 and 'vnfha_elections_total{group="web"} 1.0' in body
        assert _get(base + "/livez") == (200, "ok: running\n")
        assert _get(base + "/readyz") == (200, "ok: leader c1\n")
        state["ready"] = (False, "no leader known (no quorum)")
        assert _get(base + "/readyz") == (503, "not ok: no leader known (no quorum)\n")
        assert _get(base + "/admin")[0] == 404
        req = urllib.request.Request(base + "/metrics", method="POST", data=b"x")
        assert _get(req)[0] == 405  # type: ignore[arg-type]
    finally:
        srv.stop()


def test_listener_refuses_a_taken_port_with_its_setting():
    reg = CollectorRegistry()
    first = MetricsServer(MetricsConfig(listen=f"127.0.0.1:{free_port()}"), reg,
                          live=lambda: (True, ""), ready=lambda: (True, ""))
    first.start()
    try:
        second = MetricsServer(MetricsConfig(listen=f"127.0.0.1:{first.port}"), reg,
                               live=lambda: (True, ""), ready=lambda: (True, ""))
        with pytest.raises(OSError, match=rf"metrics\.listen 127\.0\.0\.1:{first.port}"):
            second.start()
    finally:
        first.stop()


def test_tls_listener_requires_a_client_certificate_from_the_ca(pki: Path):
    reg = CollectorRegistry()
    FailoverMeter(reg)
    tls = MetricsTls(cert_file=pki / "server.pem", key_file=pki / "server.key",
                     ca_file=pki / "ca.pem")
    srv = MetricsServer(MetricsConfig(listen=f"127.0.0.1:{free_port()}", tls=tls), reg,
                        live=lambda: (True, "running"), ready=lambda: (True, "ok"))
    srv.start()
    try:
        url = f"https://127.0.0.1:{srv.port}/livez"
        with_cert = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with_cert.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
        assert _get(url, with_cert) == (200, "ok: running\n")
        without = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            _get(url, without)
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP to TLS
            _get(f"http://127.0.0.1:{srv.port}/livez")
    finally:
        srv.stop()


def test_tls_settings_load_relative_to_the_config_file(pki: Path):
    c = parse_config({**ONE, "metrics": {"listen": "198.18.0.1:9401", "tls": {
        "cert_file": "server.pem", "key_file": "server.key", "ca_file": "ca.pem"}}},
        base_dir=pki)
    assert c.metrics.tls == MetricsTls(pki / "server.pem", pki / "server.key", pki / "ca.pem")
