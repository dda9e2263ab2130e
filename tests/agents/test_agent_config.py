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
    # failsafe is on by default: each example agent has a listener (one machine, two ports)
    assert c.failsafe_endpoint == f"127.0.0.1:{7700 + int(c.node[2:])}"


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


TLS = {"ca_file": "/c/ca.pem", "cert_file": "/c/node.pem", "key_file": "/c/node-key.pem"}


def test_failsafe_listener_is_on_by_default_where_it_can_work() -> None:
    """Failsafe is on in a new cluster: a node with a certificate and an address listens
    on the default port unless its file says port: 0; without tls (or address) there is
    no listener, no error, and a reason the agent says at start."""
    from vnfha.agents.config import DEFAULT_FAILSAFE_PORT
    from vnfha.agents.main import failsafe_notice

    on = parse_agent_config(cfg(tls=TLS, address="198.18.0.11"))
    assert (on.failsafe_port, on.failsafe_endpoint) == (7701, "198.18.0.11:7701")
    assert DEFAULT_FAILSAFE_PORT == 7701 and failsafe_notice(on) is None
    six = parse_agent_config(cfg(tls=TLS, address="2001:2::11"))
    assert six.failsafe_endpoint == "[2001:2::11]:7701"
    off = parse_agent_config(cfg(tls=TLS, address="198.18.0.11", failsafe={"port": 0}))
    assert off.failsafe_port == 0 and off.failsafe_off_reason == "failsafe.port is 0 in the config"
    assert "cannot grant failsafe leases; the actives of its groups on other VMs" \
        in failsafe_notice(off)
    plain = parse_agent_config(cfg(address="198.18.0.11"))
    assert plain.failsafe_port == 0 and plain.failsafe_off_reason.startswith("no tls")
    note = failsafe_notice(plain)
    assert note.startswith("no failsafe listener (no tls: ") and \
        "cannot grant or request failsafe leases" in note and "\n" not in note
    nowhere = parse_agent_config(cfg(tls=TLS))
    assert nowhere.failsafe_port == 0 and nowhere.failsafe_off_reason.startswith("no address")
    assert parse_agent_config(cfg(tls=TLS, address="h1", failsafe={"port": 7800})) \
        .failsafe_port == 7800


@pytest.mark.parametrize(("fs", "extra", "needle"), [
    ({"port": 7701}, {}, "failsafe.port needs address"),
    ({"port": 7701}, {"address": "198.18.0.11"}, "failsafe.port needs tls"),
    ({"port": 70000}, {"address": "198.18.0.11", "tls": TLS}, "must be 0 (no listener)"),
    ({"prot": 1}, {}, "unknown setting failsafe.prot"),
])
def test_an_explicit_failsafe_port_is_checked(fs: dict, extra: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")
                       .replace(")", r"\)")):
        parse_agent_config(cfg(failsafe=fs, **extra), source="agent.yaml")
