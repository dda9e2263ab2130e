"""Agent config: shipped examples load; every rule gives a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from vnfha.agents.config import ConfigError, load_agent_config, parse_agent_config

ROOT = Path(__file__).resolve().parents[2]

BASE = {"node": "vm1", "coordinators": ["127.0.0.1:7401"],
        "members": [{"group": "web", "member": "web-1"}]}


def cfg(**over):
    return {**BASE, **over}


@pytest.mark.parametrize("name", ["agent-vm1.yaml", "agent-vm2.yaml"])
def test_examples_load(name: str) -> None:
    c = load_agent_config(ROOT / "examples" / name)
    assert len(c.coordinators) == 3 and c.lease.ttl == 0.25 and not c.vip.manage
    assert c.tls is not None and c.tls.cert_file.name == f"node-{c.node}.pem"
    assert c.tls.ca_file == ROOT / "examples" / "cluster" / "certs" / "ca.pem"


def test_defaults() -> None:
    c = parse_agent_config(cfg())
    assert (c.lease.ttl, c.lease.keepalive_interval, c.vip.interface, c.vip.lifetime) == \
        (0.25, 0.06, "eth0", 2)


@pytest.mark.parametrize(("data", "needle"), [
    (cfg(lease={"ttl": 0.3, "keepalive_interval": 0.2}),
     "lease.keepalive_interval is 0.2 and lease.ttl is 0.3, but the rule is "
     "keepalive_interval <= ttl/3"),
    (cfg(lease={"ttl": 0.1}),  # issue 15: the interval is a default the user never wrote
     "lease.keepalive_interval is 0.06 (the default: this file does not set it) and "
     "lease.ttl is 0.1, but the rule is keepalive_interval <= ttl/3 (two lost keepalives "
     "must not end the lease); set lease.keepalive_interval to 0.0333333 or less, or "
     "lease.ttl to 0.18 or more"),
    (cfg(lease={"ttl": 0.12, "keepalive_interval": 0.04, "margin": 0.05}), "leaves"),
    (cfg(lease={"tll": 1}), "unknown setting lease.tll (did you mean 'ttl'?)"),
    (cfg(coordinators=[]), "coordinators must be a non-empty list"),
    (cfg(coordinators=["nohost"]), "coordinators[0]"),
    (cfg(members=[]), "members must be a non-empty list"),
    (cfg(members=[{"group": "web"}]), "members[0].member is required"),
    (cfg(members=[{"group": "web", "member": "a"}, {"group": "web", "member": "a"}]),
     "listed twice"),
    (cfg(vip={"interface": "eth0/x"}), "vip.interface"),
    (cfg(vip={"lifetime": 1}), "vip.lifetime (1) must be 0 (off) or at least 2 seconds"),
    (cfg(role_api={"socket": "relative.sock"}), "role_api.socket must be an absolute path"),
    (cfg(members=[{"group": "web", "member": "a",
                   "checks": [{"kind": "tcp", "port": 99999}]}]), "port"),
    ({"coordinators": ["127.0.0.1:7401"]}, "node is required"),
    (cfg(coordinators=["198.18.0.1:7401"]),
     "tls (ca_file, cert_file, key_file) is required to talk to coordinators that are not "
     "on loopback (198.18.0.1:7401)"),
    (cfg(tls={"ca_file": "a"}), "tls needs ca_file, cert_file, key_file"),
    (cfg(insecure="no"), "insecure must be true or false"),
])
def test_bad_config_is_a_clear_error(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_agent_config(data, source="agent.yaml")
    assert str(err.value).startswith("agent.yaml: ")
    assert needle in str(err.value)


def test_remote_coordinators_without_tls_need_an_explicit_insecure() -> None:
    c = parse_agent_config(cfg(coordinators=["198.18.0.1:7401"], insecure=True))
    assert c.insecure and c.tls is None
    # loopback coordinators (a single local coordinator) may go without
    assert parse_agent_config(cfg(coordinators=["[::1]:7401", "localhost:7402"])).tls is None


def test_lb_section_takes_its_own_certificate(tmp_path: Path) -> None:
    c = parse_agent_config(cfg(
        tls={"ca_file": "/c/ca.pem", "cert_file": "/c/node.pem", "key_file": "/c/node-key.pem"},
        lb={"group": "web", "admin_socket": "/run/haproxy.sock", "backend": "b",
            "tls": {"ca_file": "/c/ca.pem", "cert_file": "/c/lb.pem",
                    "key_file": "/c/lb-key.pem"}}))
    assert c.lb.tls.cert_file == Path("/c/lb.pem")
    assert c.tls is not None and c.tls.cert_file == Path("/c/node.pem")
