"""The roles' templates, rendered by Ansible itself, are what vnfha and systemd accept.

The namespace deployment test runs the sysv flavour; this one renders every template
(systemd units included) with the roles' defaults, coordinators on IPv6 addresses, and
checks the result with the real consumers: vnfha's config loaders, `systemd-analyze
verify` and `sh -n`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vnfha.agents.config import load_agent_config
from vnfha.coordinator.config import ConfigError, load_config

HERE = Path(__file__).parent / "render"
BIN = Path(sys.executable).parent
VENV = BIN.parent  # has bin/vnfha, so systemd-analyze finds ExecStart


def render(out: Path, **overrides: Any) -> None:
    extra = {"out": str(out), "vnfha_common_venv": str(VENV), **overrides}
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(HERE / "inventory.yml"),
         str(HERE / "render.yml"), "-e", json.dumps(extra)],
        capture_output=True, text=True, timeout=120,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(out), "ANSIBLE_HOME": str(out / ".a"),
             "ANSIBLE_LOCAL_TEMP": str(out / ".a/tmp"), "ANSIBLE_NOCOLOR": "1",
             "LANG": "C.UTF-8"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    secret = out / "cluster.secret"
    secret.write_text("s3cret-for-the-test\n")
    render(out, vnfha_coordinator_secret_file=str(secret),
           vnfha_coordinator_admin_socket="/run/vnfha/c1.sock",
           vnfha_coordinator_groups=[{"name": "web", "vip": "2001:2::100/64"},
                                     {"name": "lb", "mode": "active-active"}],
           vnfha_agent_node="vm1",
           vnfha_agent_members=[{"group": "web", "member": "web-1", "priority": 200,
                                 "checks": [{"kind": "tcp", "port": 8080}]}])
    return out


def test_coordinator_config_loads_with_members_from_the_inventory(rendered: Path) -> None:
    cfg = load_config(rendered / "coordinator.yaml")
    assert cfg.node_id == "c1"
    assert [(m.id, m.api, m.raft) for m in cfg.cluster.members] == [
        ("c1", "[2001:2::1]:7401", "[2001:2::1]:7501"),
        ("c2", "[2001:2::2]:7402", "[2001:2::2]:7501"),
        ("c3", "coord3.example.net:7401", "coord3.example.net:7501"),
    ]
    assert cfg.cluster.secret == "s3cret-for-the-test"
    assert [g.as_spec() for g in cfg.groups] == [
        {"name": "web", "mode": "active-standby", "vip": "2001:2::100/64"},
        {"name": "lb", "mode": "active-active", "vip": ""}]
    # the role's defaults are the product's defaults
    assert (cfg.leases.ttl, cfg.leases.keepalive_interval, cfg.leases.stabilization) == \
        (0.25, 0.06, 10.0)
    assert (cfg.raft.election_timeout_min, cfg.raft.election_timeout_max,
            cfg.raft.heartbeat_interval, cfg.raft.compaction_min_entries) == \
        (0.3, 0.6, 0.05, 10000)
    assert str(cfg.store.data_dir) == "/var/lib/vnfha" and cfg.store.backend == "raft"
    assert str(cfg.admin_socket) == "/run/vnfha/c1.sock"


def test_agent_config_loads_with_every_coordinator(rendered: Path) -> None:
    cfg = load_agent_config(rendered / "agent.yaml")
    assert cfg.node == "vm1"
    assert cfg.coordinators == ("[2001:2::1]:7401", "[2001:2::2]:7402",
                                "coord3.example.net:7401")
    assert cfg.vip.interface == "eth0" and cfg.vip.manage is True
    assert (cfg.lease.ttl, cfg.lease.keepalive_interval) == (0.25, 0.06)
    assert cfg.role_api_socket == "/run/vnfha/agent.sock"
    (member,) = cfg.members
    assert (member.group, member.member, member.priority, len(member.checks)) == \
        ("web", "web-1", 200, 1)


def test_a_misspelt_group_key_reaches_vnfha_and_is_refused(tmp_path: Path) -> None:
    """Groups and members are written as given, so vnfha's strict loader (the role's
    `validate` step) sees a typo instead of the template dropping it silently."""
    secret = tmp_path / "cluster.secret"
    secret.write_text("x" * 32)
    render(tmp_path, vnfha_coordinator_secret_file=str(secret),
           vnfha_coordinator_groups=[{"name": "web", "vips": "198.18.0.100/24"}],
           vnfha_agent_members=[{"group": "web", "member": "web-1"}])
    with pytest.raises(ConfigError, match=r"unknown setting groups.*vips.*did you mean 'vip'"):
        load_config(tmp_path / "coordinator.yaml")


def test_systemd_units_verify(rendered: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian package systemd)"
    for unit in ("vnfha-coordinator.service", "vnfha-agent.service"):
        proc = subprocess.run([analyze, "verify", str(rendered / unit)], capture_output=True,
                              text=True, timeout=60)
        problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                    if unit in line or "vnfha" in line]
        assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
    coordinator = (rendered / "vnfha-coordinator.service").read_text()
    assert f"ExecStart={VENV}/bin/vnfha coordinator --config /etc/vnfha/coordinator.yaml" \
        in coordinator
    assert "User=vnfha" in coordinator and "RuntimeDirectory=vnfha" in coordinator
    agent = (rendered / "vnfha-agent.service").read_text()
    assert "KillMode=mixed" in agent and "RuntimeDirectory=vnfha" in agent


def test_init_scripts_parse(rendered: Path) -> None:
    for script in ("vnfha-coordinator.init", "vnfha-agent.init"):
        proc = subprocess.run(["sh", "-n", str(rendered / script)], capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert "### BEGIN INIT INFO" in (rendered / script).read_text()
