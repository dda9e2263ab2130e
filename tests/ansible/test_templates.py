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
from vnfha.agents.lb.config import LbConfig
from vnfha.coordinator.cli import DEFAULT_AGENT_STATUS_SOCKET
from vnfha.coordinator.config import ConfigError, StateConfig, load_config
from vnfha.coordinator.recovery import RecoveryConfig
from vnfha.coordinator.security.tls import TlsFiles
from vnfha.coordinator.store.etcd_config import EtcdSettings

HERE = Path(__file__).parent / "render"
BIN = Path(sys.executable).parent
VENV = BIN.parent  # has bin/vnfha, so systemd-analyze finds ExecStart
ROLES = Path(__file__).parents[2] / "ansible" / "roles"
CERTS = Path("/etc/vnfha/certs")  # the roles' default folder of certificates on a host


def playbook(out: Path, book: Path, extra: dict[str, Any]) -> str:
    """Run ansible-playbook on the controller alone; returns its output."""
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(HERE / "inventory.yml"),
         str(book), "-e", json.dumps(extra)],
        capture_output=True, text=True, timeout=120,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(out), "ANSIBLE_HOME": str(out / ".a"),
             "ANSIBLE_LOCAL_TEMP": str(out / ".a/tmp"), "ANSIBLE_NOCOLOR": "1",
             "LANG": "C.UTF-8"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def render(out: Path, **overrides: Any) -> None:
    playbook(out, HERE / "render.yml",
             {"out": str(out), "vnfha_common_venv": str(VENV), **overrides})


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    secret = out / "cluster.secret"
    secret.write_text("s3cret-for-the-test-at-least-32-bytes\n")
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
    assert cfg.cluster.secret == "s3cret-for-the-test-at-least-32-bytes"
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
    # optional sections stay out, and what is always written holds vnfha's defaults
    assert cfg.state == StateConfig()
    assert cfg.recovery == RecoveryConfig() and not cfg.recovery.enabled
    text = (rendered / "coordinator.yaml").read_text()
    assert "recovery:" not in text and "etcd" not in text


def test_agent_config_loads_with_every_coordinator(rendered: Path) -> None:
    cfg = load_agent_config(rendered / "agent.yaml")
    assert cfg.node == "vm1"
    assert cfg.coordinators == ("[2001:2::1]:7401", "[2001:2::2]:7402",
                                "coord3.example.net:7401")
    assert cfg.vip.interface == "eth0" and cfg.vip.manage is True
    assert (cfg.lease.ttl, cfg.lease.keepalive_interval) == (0.25, 0.06)
    assert cfg.role_api_socket == "/run/vnfha/agent.sock"
    # `vnfha agent status` with no options looks there: it works on a deployed host
    assert cfg.status_socket == DEFAULT_AGENT_STATUS_SOCKET
    (member,) = cfg.members
    assert (member.group, member.member, member.priority, len(member.checks)) == \
        ("web", "web-1", 200, 1)
    assert cfg.lb is None and "lb:" not in (rendered / "agent.yaml").read_text()
    # failsafe is on by default in a new cluster: the agent listens on its address
    assert cfg.failsafe_endpoint == "[2001:2::1]:7701"


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


def test_agent_sockets_each_get_their_folder_or_stay_off(tmp_path: Path) -> None:
    """No role API but a status socket: systemd (RuntimeDirectory) and the init script
    still make the status socket's folder; an empty path writes no section at all."""
    secret = tmp_path / "cluster.secret"
    secret.write_text("x" * 32)
    render(tmp_path, vnfha_coordinator_secret_file=str(secret),
           vnfha_agent_role_api_socket="", vnfha_agent_status_socket="/run/vnfha-st/s.sock",
           vnfha_agent_members=[{"group": "web", "member": "web-1"}])
    cfg = load_agent_config(tmp_path / "agent.yaml")
    assert (cfg.role_api_socket, cfg.status_socket) == (None, "/run/vnfha-st/s.sock")
    unit = (tmp_path / "vnfha-agent.service").read_text()
    assert "RuntimeDirectory=vnfha-st\n" in unit
    assert 'SOCKDIRS="/run/vnfha-st"' in (tmp_path / "vnfha-agent.init").read_text()
    render(tmp_path, vnfha_coordinator_secret_file=str(secret),
           vnfha_agent_role_api_socket="", vnfha_agent_status_socket="",
           vnfha_agent_members=[{"group": "web", "member": "web-1"}])
    cfg = load_agent_config(tmp_path / "agent.yaml")
    assert (cfg.role_api_socket, cfg.status_socket) == (None, None)
    assert "status:" not in (tmp_path / "agent.yaml").read_text()
    assert "RuntimeDirectory" not in (tmp_path / "vnfha-agent.service").read_text()


def test_init_scripts_parse(rendered: Path) -> None:
    for script in ("vnfha-coordinator.init", "vnfha-agent.init"):
        proc = subprocess.run(["sh", "-n", str(rendered / script)], capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert "### BEGIN INIT INFO" in (rendered / script).read_text()


# --------------------------------------------------------------------------- newer sections
# store.etcd, state, recovery (coordinator) and lb (agent), each with values that are
# not vnfha's defaults, so a variable the template drops or misnames shows up.


def etcd_files(d: Path) -> dict[str, Path]:
    """Stand-ins for the TLS files and the password file: the loader only checks that
    they can be read (the TLS handshake itself is tested against a real etcd in
    tests/store)."""
    files = {"ca": d / "etcd-ca.pem", "cert": d / "client.pem", "key": d / "client-key.pem",
             "password": d / "etcd.password"}
    for kind, path in files.items():
        path.write_text(f"{kind} for the test\n")
    return files


@pytest.fixture(scope="module")
def etcd_rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered-etcd")
    f = etcd_files(out)
    render(out,
           # no vnfha_coordinator_secret_file: the default path does not exist here, so
           # a secret_file line in the etcd config would make the loader fail
           vnfha_coordinator_store_backend="etcd",
           vnfha_coordinator_etcd_endpoints=["[2001:2::10]:2379", "etcd2.example.net:2379"],
           vnfha_coordinator_etcd_prefix="/vnfha/site-a",
           vnfha_coordinator_etcd_session_ttl=7,
           vnfha_coordinator_etcd_tls_ca_file=str(f["ca"]),
           vnfha_coordinator_etcd_tls_cert_file=str(f["cert"]),
           vnfha_coordinator_etcd_tls_key_file=str(f["key"]),
           vnfha_coordinator_etcd_auth_user="vnfha-site-a",
           vnfha_coordinator_etcd_auth_password_file=str(f["password"]),
           vnfha_coordinator_state_checkpoint_max_bytes=131072,
           vnfha_coordinator_state_queue_max_message_bytes=4096,
           vnfha_coordinator_state_queue_retain_messages=50,
           vnfha_coordinator_state_queue_retain_bytes=8192,
           vnfha_coordinator_recovery_exec="/usr/local/bin/vnfm-heal --site 'a b'",
           vnfha_coordinator_recovery_webhook="http://[2001:2::60]:9000/recover",
           vnfha_coordinator_recovery_timeout=2.5,
           vnfha_coordinator_recovery_max_attempts=5,
           vnfha_coordinator_recovery_backoff=0.5,
           vnfha_coordinator_recovery_backoff_max=8,
           vnfha_coordinator_recovery_without_lb=True,
           vnfha_coordinator_groups=[{"name": "web", "mode": "active-active"},
                                     {"name": "lb", "vip": "198.18.0.100/24"}],
           vnfha_agent_node="lb1",
           vnfha_agent_members=[{"group": "lb", "member": "lb-1", "priority": 200}],
           vnfha_agent_lb_group="web",
           vnfha_agent_lb_admin_socket="/run/haproxy-web/admin.sock",
           vnfha_agent_lb_backend="web_servers",
           vnfha_agent_lb_servers={"web-1": "srv1", "web-2": "srv2"},
           vnfha_agent_lb_excluded_state="drain",
           vnfha_agent_lb_health_source="haproxy",
           vnfha_agent_lb_reconcile_interval=1.5)
    return out


def test_etcd_coordinator_has_tls_auth_and_no_raft_address_or_secret(etcd_rendered: Path) -> None:
    cfg = load_config(etcd_rendered / "coordinator.yaml")
    assert cfg.store.backend == "etcd"
    assert [(m.id, m.api, m.raft) for m in cfg.cluster.members] == [
        ("c1", "[2001:2::1]:7401", None),
        ("c2", "[2001:2::2]:7402", None),
        ("c3", "coord3.example.net:7401", None),
    ]
    assert cfg.cluster.secret is None and cfg.cluster.secret_file is None
    text = (etcd_rendered / "coordinator.yaml").read_text()
    assert "raft:" not in text.split("store:")[0] and "secret" not in text
    d = etcd_rendered
    assert cfg.store.etcd == EtcdSettings(
        endpoints=("[2001:2::10]:2379", "etcd2.example.net:2379"), prefix="/vnfha/site-a",
        session_ttl=7, ca_file=d / "etcd-ca.pem", cert_file=d / "client.pem",
        key_file=d / "client-key.pem", user="vnfha-site-a",
        password_file=d / "etcd.password", password="password for the test")


def test_state_and_recovery_sections_reach_vnfha(etcd_rendered: Path) -> None:
    cfg = load_config(etcd_rendered / "coordinator.yaml")
    assert cfg.state == StateConfig(checkpoint_max_bytes=131072, queue_max_message_bytes=4096,
                                    queue_retain_messages=50, queue_retain_bytes=8192)
    assert cfg.recovery == RecoveryConfig(
        exec=("/usr/local/bin/vnfm-heal", "--site", "a b"),
        webhook="http://[2001:2::60]:9000/recover", timeout=2.5, max_attempts=5,
        backoff=0.5, backoff_max=8.0, without_lb=True)


def test_lb_section_reaches_vnfha(etcd_rendered: Path) -> None:
    cfg = load_agent_config(etcd_rendered / "agent.yaml")
    assert cfg.lb == LbConfig(group="web", admin_socket="/run/haproxy-web/admin.sock",
                              backend="web_servers", servers={"web-1": "srv1", "web-2": "srv2"},
                              excluded_state="drain", health_source="haproxy",
                              reconcile_interval=1.5,
                              tls=TlsFiles(CERTS / "ca.pem", CERTS / "lb.pem",
                                           CERTS / "lb-key.pem"))
    assert [(m.group, m.member) for m in cfg.members] == [("lb", "lb-1")]


def test_etcd_and_lb_defaults_are_vnfha_defaults(tmp_path: Path) -> None:
    """Only the required settings given: the role's defaults must be the product's."""
    render(tmp_path, vnfha_coordinator_store_backend="etcd",
           vnfha_coordinator_etcd_endpoints=["198.18.0.10:2379"],
           vnfha_coordinator_recovery_webhook="http://198.18.0.60/recover",
           vnfha_agent_members=[{"group": "lb", "member": "lb-1"}],
           vnfha_agent_lb_group="web", vnfha_agent_lb_backend="web_servers")
    cfg = load_config(tmp_path / "coordinator.yaml")
    assert cfg.store.etcd == EtcdSettings(endpoints=("198.18.0.10:2379",))
    assert "tls:" not in (tmp_path / "coordinator.yaml").read_text().split("store:")[1] \
        .split("raft:")[0]
    assert cfg.recovery == RecoveryConfig(webhook="http://198.18.0.60/recover")
    lb = load_agent_config(tmp_path / "agent.yaml").lb
    assert lb == LbConfig(group="web", admin_socket="/run/haproxy/admin.sock",
                          backend="web_servers",
                          tls=TlsFiles(CERTS / "ca.pem", CERTS / "lb.pem", CERTS / "lb-key.pem"))


# One render per case, each with a wrong coordinator value and a wrong agent value: the
# template passes them through and vnfha's loader (the role's `validate`) refuses them.
WRONG = [
    pytest.param({"vnfha_coordinator_state_checkpoint_max_bytes": 600000},
                 r"state.checkpoint_max_bytes \(600000\) must be <= 524288",
                 {"vnfha_agent_lb_health_source": "haproxy"},
                 r"lb.health_source haproxy needs lb.excluded_state drain", id="state+lb"),
    pytest.param({"vnfha_coordinator_recovery_exec": ["/usr/local/bin/heal"],
                  "vnfha_coordinator_recovery_backoff": 10,
                  "vnfha_coordinator_recovery_backoff_max": 5},
                 r"recovery.backoff_max \(5\) must be >= recovery.backoff \(10\)",
                 {"vnfha_agent_lb_backend": "web servers"},
                 r"lb.backend \('web servers'\) must be an HAProxy backend name",
                 id="recovery+lb-backend"),
    pytest.param({"vnfha_coordinator_etcd_endpoints": ["https://198.18.0.10:2379"]},
                 r"store.etcd.endpoints\[0\] .* must be host:port without a scheme",
                 {"vnfha_agent_lb_servers": {"web-1": "srv1", "web-2": "srv1"}},
                 r"lb.servers maps two members to the same HAProxy server",
                 id="etcd+lb-servers"),
]


@pytest.mark.parametrize(("coordinator", "coordinator_error", "agent", "agent_error"), WRONG)
def test_a_wrong_value_in_a_new_section_is_refused_by_vnfha(
        tmp_path: Path, coordinator: dict[str, Any], coordinator_error: str,
        agent: dict[str, Any], agent_error: str) -> None:
    secret = tmp_path / "cluster.secret"
    secret.write_text("x" * 32)
    backend = "etcd" if "vnfha_coordinator_etcd_endpoints" in coordinator else "raft"
    lb_host = {"vnfha_agent_members": [{"group": "lb", "member": "lb-1"}],
               "vnfha_agent_lb_group": "web", "vnfha_agent_lb_backend": "web_servers"}
    render(tmp_path, vnfha_coordinator_secret_file=str(secret),
           vnfha_coordinator_store_backend=backend, **coordinator, **{**lb_host, **agent})
    with pytest.raises(ConfigError, match=coordinator_error):
        load_config(tmp_path / "coordinator.yaml")
    with pytest.raises(ConfigError, match=agent_error):
        load_agent_config(tmp_path / "agent.yaml")


# The tasks file alone (include_role would also run the role's dependency vnfha_common,
# which installs a venv), with the role defaults loaded as render.yml does, and the
# coordinator's restart handler replaced by one that only says it was notified.
ETCD_FILES_PLAY = """\
- name: Run the coordinator role's etcd file tasks on the controller
  hosts: c1
  gather_facts: false
  tasks:
    - name: Load the role defaults
      ansible.builtin.include_vars:
        file: "{{ roles_dir }}/{{ item }}/defaults/main.yml"
      loop: [vnfha_common, vnfha_coordinator]
    - name: Install the etcd TLS and password files
      ansible.builtin.include_tasks: "{{ roles_dir }}/vnfha_coordinator/tasks/etcd.yml"
  handlers:
    - name: Stand-in for the coordinator restart
      ansible.builtin.debug:
        msg: RESTART-NOTIFIED
      listen: Restart vnfha-coordinator
"""


def test_etcd_files_are_copied_with_their_modes_and_the_password_never_shown(
        tmp_path: Path) -> None:
    """The role's etcd.yml for real (local connection): files from controller paths land
    where the config points, key and password 0600 and owned by the service user, the
    password never appears in the output, and a second run changes nothing."""
    src = tmp_path / "controller"
    src.mkdir()
    f = etcd_files(src)
    f["password"].write_text("pw-NEVER-PRINTED-4711\n")
    dest = tmp_path / "host"
    dest.mkdir()
    book = tmp_path / "etcd-files.yml"
    book.write_text(ETCD_FILES_PLAY)
    user = subprocess.run(["id", "-un"], capture_output=True, text=True,
                          check=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True,
                           check=True).stdout.strip()
    extra = {
        "roles_dir": str(ROLES),
        "vnfha_coordinator_user": user, "vnfha_coordinator_system_group": group,
        "vnfha_coordinator_etcd_tls_ca_src": str(f["ca"]),
        "vnfha_coordinator_etcd_tls_ca_file": str(dest / "ca.pem"),
        "vnfha_coordinator_etcd_tls_cert_src": str(f["cert"]),
        "vnfha_coordinator_etcd_tls_cert_file": str(dest / "cert.pem"),
        "vnfha_coordinator_etcd_tls_key_src": str(f["key"]),
        "vnfha_coordinator_etcd_tls_key_file": str(dest / "key.pem"),
        "vnfha_coordinator_etcd_auth_password_src": str(f["password"]),
        "vnfha_coordinator_etcd_auth_password_file": str(dest / "etcd.password"),
    }
    first = playbook(tmp_path, book, extra)
    assert "changed=3" in first, first  # three tasks; the first copied two files
    for name, source, mode in (("ca.pem", "ca", 0o644), ("cert.pem", "cert", 0o644),
                               ("key.pem", "key", 0o600), ("etcd.password", "password", 0o600)):
        path = dest / name
        assert path.read_bytes() == f[source].read_bytes(), name
        assert path.stat().st_mode & 0o777 == mode, (name, oct(path.stat().st_mode))
    assert "pw-NEVER-PRINTED-4711" not in first
    assert "RESTART-NOTIFIED" in first  # a new key or password restarts the coordinator
    second = playbook(tmp_path, book, extra)
    assert "changed=0" in second and "failed=0" in second, second
    assert "RESTART-NOTIFIED" not in second

    # the password given inline (from Vault) instead of a file replaces it, still unshown
    extra.pop("vnfha_coordinator_etcd_auth_password_src")
    extra["vnfha_coordinator_etcd_auth_password"] = "pw-INLINE-NEVER-PRINTED-0815"
    third = playbook(tmp_path, book, extra)
    assert "changed=1" in third, third
    assert (dest / "etcd.password").read_text() == "pw-INLINE-NEVER-PRINTED-0815"
    assert (dest / "etcd.password").stat().st_mode & 0o777 == 0o600
    assert "pw-INLINE-NEVER-PRINTED-0815" not in third and "RESTART-NOTIFIED" in third


@pytest.mark.parametrize("role,config", [("vnfha_coordinator", "coordinator.yaml"),
                                         ("vnfha_agent", "agent.yaml")])
def test_roles_validate_with_vnfha_config_check(rendered: Path, tmp_path: Path, role: str,
                                                config: str) -> None:
    """The template's `validate` step is `vnfha config check`: run the very command the
    role runs on the rendered file (accepted) and on a broken copy (refused, exit 2, with
    vnfha's one-line message on stderr, which Ansible shows)."""
    import shlex

    import yaml

    tasks = yaml.safe_load((ROLES / role / "tasks" / "main.yml").read_text())
    (validate,) = [t["ansible.builtin.template"]["validate"] for t in tasks
                   if "validate" in t.get("ansible.builtin.template", {})]
    assert "config check" in validate and "python -c" not in validate
    argv = shlex.split(validate.replace("{{ vnfha_common_venv }}", str(VENV)))
    src = rendered / config
    ok = subprocess.run([a.replace("%s", str(src)) for a in argv], capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith(f"{src}: valid "), ok.stderr
    bad = tmp_path / config
    bad.write_text(src.read_text() + "unknown_key: 1\n")
    refused = subprocess.run([a.replace("%s", str(bad)) for a in argv], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith(f"error: {bad}: unknown setting unknown_key")
    assert refused.stderr.count("\n") == 1


# --------------------------------------------------------------------------- mTLS
# mTLS is the default: nothing set renders `tls:` for both services (and an LB host's
# lb.tls with its lb certificate); only vnfha_common_insecure renders `insecure: true`.


def test_mtls_is_the_default_for_coordinators_and_agents(rendered: Path) -> None:
    coordinator = load_config(rendered / "coordinator.yaml")
    assert coordinator.tls == TlsFiles(CERTS / "ca.pem", CERTS / "coordinator.pem",
                                       CERTS / "coordinator-key.pem")
    assert coordinator.insecure is False
    agent = load_agent_config(rendered / "agent.yaml")
    assert agent.tls == TlsFiles(CERTS / "ca.pem", CERTS / "node.pem", CERTS / "node-key.pem")
    assert agent.insecure is False
    for name in ("coordinator.yaml", "agent.yaml"):
        assert "insecure" not in (rendered / name).read_text()


def test_insecure_only_when_the_operator_says_so(tmp_path: Path) -> None:
    secret = tmp_path / "cluster.secret"
    secret.write_text("x" * 32)
    render(tmp_path, vnfha_coordinator_secret_file=str(secret), vnfha_common_insecure=True,
           vnfha_agent_members=[{"group": "web", "member": "web-1"}])
    coordinator = load_config(tmp_path / "coordinator.yaml")
    agent = load_agent_config(tmp_path / "agent.yaml")
    assert coordinator.tls is None and coordinator.insecure is True
    assert agent.tls is None and agent.insecure is True
    assert agent.failsafe_port == 0 and "failsafe:" not in (tmp_path / "agent.yaml").read_text()
    # the file says loudly why there is no tls
    assert "DANGER: vnfha_common_insecure is true" in (tmp_path / "coordinator.yaml").read_text()
    assert "DANGER: vnfha_common_insecure is true" in (tmp_path / "agent.yaml").read_text()


def test_own_pki_paths_are_rendered_as_given(tmp_path: Path) -> None:
    secret = tmp_path / "cluster.secret"
    secret.write_text("x" * 32)
    render(tmp_path, vnfha_coordinator_secret_file=str(secret),
           vnfha_common_tls_manage=False,
           vnfha_coordinator_tls_ca_file="/pki/ca.pem",
           vnfha_coordinator_tls_cert_file="/pki/c1.pem",
           vnfha_coordinator_tls_key_file="/pki/c1.key",
           vnfha_agent_tls_ca_file="/pki/ca.pem", vnfha_agent_tls_cert_file="/pki/vm1.pem",
           vnfha_agent_tls_key_file="/pki/vm1.key",
           vnfha_agent_members=[{"group": "web", "member": "web-1"}])
    assert load_config(tmp_path / "coordinator.yaml").tls == TlsFiles(
        Path("/pki/ca.pem"), Path("/pki/c1.pem"), Path("/pki/c1.key"))
    assert load_agent_config(tmp_path / "agent.yaml").tls == TlsFiles(
        Path("/pki/ca.pem"), Path("/pki/vm1.pem"), Path("/pki/vm1.key"))


TLS_PLAY = """\
- name: Issue and install certificates as the roles do, on the controller
  hosts: c1
  gather_facts: false
  tasks:
    - name: Certificates
      ansible.builtin.include_role:
        name: "{{ roles_dir }}/vnfha_common"
        tasks_from: tls.yml
"""


def test_certificates_are_issued_once_installed_0600_and_reissued_when_due(
        tmp_path: Path) -> None:
    """tls.yml for real (local connection): a CA made once on the "controller", each
    certificate issued with its identity and address, keys 0600 and never shown; a
    second run changes nothing; a certificate within the renewal window, or from a
    CA the operator replaced, is issued again."""
    from cryptography import x509

    book = tmp_path / "tls.yml"
    book.write_text(TLS_PLAY)
    pki, host = tmp_path / "pki", tmp_path / "host"
    user = subprocess.run(["id", "-un"], capture_output=True, text=True,
                          check=True).stdout.strip()
    extra: dict[str, Any] = {
        "roles_dir": str(ROLES), "vnfha_common_tls_pki_dir": str(pki),
        "vnfha_common_tls_dir": str(host),
        "vnfha_common__tls_certs": [
            {"identity": "coordinator/c1", "san_ip": ["198.18.0.1"],
             "cert": str(host / "coordinator.pem"), "key": str(host / "coordinator-key.pem"),
             "owner": user},
            {"identity": "viewer/c1", "cert": str(host / "viewer.pem"),
             "key": str(host / "viewer-key.pem")}],
    }
    first = playbook(tmp_path, book, extra)
    assert "failed=0" in first
    ca_key = (pki / "ca-key.pem").read_text()
    keys = {name: (host / name).read_text() for name in ("coordinator-key.pem", "viewer-key.pem")}
    for name, text in keys.items():
        assert "PRIVATE KEY" in text
        assert (host / name).stat().st_mode & 0o777 == 0o600, name
        assert text.splitlines()[1] not in first, f"{name} shown in the output"
    assert ca_key.splitlines()[1] not in first
    assert not (host / "ca-key.pem").exists()
    cert = x509.load_pem_x509_certificate((host / "coordinator.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["vnfha://coordinator/c1"]
    assert "198.18.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}

    second = playbook(tmp_path, book, extra)
    assert "changed=0" in second and "failed=0" in second, second
    assert (host / "coordinator-key.pem").read_text() == keys["coordinator-key.pem"]

    # 90-day certificates renewed when 95 days or less are left: issued again
    third = playbook(tmp_path, book, {**extra, "vnfha_common_tls_renew_days": 95,
                                      "vnfha_common_tls_cert_days": 100})
    assert "changed=0" not in third and "failed=0" in third, third
    assert (host / "coordinator-key.pem").read_text() != keys["coordinator-key.pem"]
    assert (pki / "ca-key.pem").read_text() == ca_key  # the CA is made once

    # the operator brings their own CA: every certificate is issued again from it
    own = tmp_path / "own-ca"
    made = subprocess.run([str(BIN / "vnfha"), "certs", "init", "--dir", str(own)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    fourth = playbook(tmp_path, book, {**extra,
                                       "vnfha_common_tls_ca_cert_src": str(own / "ca.pem"),
                                       "vnfha_common_tls_ca_key_src": str(own / "ca-key.pem")})
    assert "failed=0" in fourth
    assert (own / "ca-key.pem").read_text().splitlines()[1] not in fourth
    assert (host / "ca.pem").read_bytes() == (own / "ca.pem").read_bytes()
    own_ca = x509.load_pem_x509_certificate((own / "ca.pem").read_bytes())
    for name in ("coordinator.pem", "viewer.pem"):
        x509.load_pem_x509_certificate((host / name).read_bytes()).verify_directly_issued_by(
            own_ca)
