"""The active-active examples load, and the agent's `lb:` section names its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vnfha.agents.config import ConfigError, load_agent_config, parse_agent_config
from vnfha.coordinator.config import load_groups_file, parse_config
from vnfha.coordinator.confparse import read_yaml

EX = Path(__file__).resolve().parents[2] / "examples" / "lb"


def test_examples_load(tmp_path: Path):
    lb = load_agent_config(EX / "agent-lb1.yaml").lb
    assert (lb.group, lb.backend, lb.excluded_state) == ("web", "web_servers", "maint")
    assert load_agent_config(EX / "agent-vm1.yaml").lb is None
    assert [g.mode for g in load_groups_file(EX / "coordinator-groups.yaml")] == \
        ["active-active", "active-standby"]
    data = read_yaml(EX / "coordinator.yaml")
    secret = tmp_path / "secret"
    secret.write_text("s3cret-of-at-least-thirty-two-bytes")
    data["cluster"]["secret_file"] = str(secret)
    cfg = parse_config(data)
    assert cfg.recovery.exec == ("/usr/local/bin/vnfm-heal",) and cfg.recovery.enabled


def agent(lb: dict) -> dict:
    return {"node": "lb1", "coordinators": ["127.0.0.1:7401"],
            "members": [{"group": "lb", "member": "lb-1"}], "lb": lb}


BASE = {"group": "web", "admin_socket": "/run/haproxy/admin.sock", "backend": "be"}


@pytest.mark.parametrize(("lb", "message"), [
    ({"group": "web", "backend": "be"}, "lb.admin_socket is required"),
    ({**BASE, "admin_socket": "admin.sock"}, "lb.admin_socket must be the absolute path"),
    ({**BASE, "backend": "be x"}, "lb.backend ('be x') must be an HAProxy backend name"),
    ({**BASE, "servers": {"web-1": "a", "web-2": "a"}}, "two members to the same"),
    ({**BASE, "servers": {"web-1": "a/b"}}, "lb.servers.web-1 ('a/b')"),
    ({**BASE, "excluded_state": "off"}, "lb.excluded_state ('off') must be one of"),
    ({**BASE, "health_source": "haproxy"}, "needs lb.excluded_state drain"),
    ({**BASE, "reconcile_interval": 0}, "lb.reconcile_interval (0) must be > 0"),
    ({**BASE, "sockets": 1}, "unknown setting lb.sockets"),
])
def test_bad_lb_settings_are_named(lb, message):
    with pytest.raises(ConfigError) as e:
        parse_agent_config(agent(lb))
    assert message in str(e.value)
