"""The Ansible roles deploy a real cluster over real ssh, with mTLS on (the roles' default),
a failover works, and a second run changes nothing.

Five machines (c1, c2, c3, vm1, vm2: network namespaces with their own sshd and their own
/etc, /opt, /var, see sshlab.py) and a controller `ctl` on one lab switch. From `ctl`,
ansible-playbook runs ansible/site.yml with the sysv service manager (systemd is not
PID 1 here) and an air-gapped install from a wheelhouse built first, as an operator
would with ansible/build-wheelhouse.sh.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sshlab import SshFleet  # tests/ansible, on sys.path as the test's own folder

from vnfha_lab.netlab import Lab, pids_in_netns

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent
VIP = "198.18.0.100/24"
COORDINATORS = {"c1": 1, "c2": 2, "c3": 3}
VMS = {"vm1": (11, 200), "vm2": (12, 100)}
RECAP_RE = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                      r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)")


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of an ansible-playbook run: host -> ok/changed/unreachable/failed."""
    _, _, tail = output.rpartition("PLAY RECAP")
    out = {}
    for line in tail.splitlines():
        m = RECAP_RE.match(line.strip())
        if m:
            out[m["host"]] = {k: int(v) for k, v in m.groupdict().items() if k != "host"}
    return out


def test_recap_parser_reads_every_host() -> None:
    text = ("PLAY RECAP *****\n"
            "c1   : ok=31   changed=0    unreachable=0    failed=0    skipped=6\n"
            "vm2  : ok=20   changed=3    unreachable=1    failed=2    skipped=4\n")
    assert recap(text) == {"c1": {"ok": 31, "changed": 0, "unreachable": 0, "failed": 0},
                           "vm2": {"ok": 20, "changed": 3, "unreachable": 1, "failed": 2}}


class Deployment:
    """The fleet, the inventory and the runs of the playbook."""

    def __init__(self, fleet: SshFleet, root: Path, wheelhouse: Path, version: str) -> None:
        self.fleet = fleet
        self.root = root
        self.inventory = root / "inventory.yml"
        self.runs: list[str] = []
        ssh_args = " ".join(fleet.ssh_args())
        hosts = fleet.hosts
        inventory: dict[str, Any] = {"all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(fleet.key),
                "ansible_ssh_common_args": ssh_args,
                "ansible_python_interpreter": "/usr/bin/python3",
                "vnfha_common_service_manager": "sysv",
                "vnfha_common_wheelhouse": str(wheelhouse),
                "vnfha_common_version": version,  # derived from git: the wheel's
                # the CA lives with the test, not in the checkout's ansible/pki
                "vnfha_common_tls_pki_dir": str(root / "pki"),
            },
            "children": {
                "vnfha_coordinators": {
                    "hosts": {c: {"ansible_host": hosts[c].ip} for c in COORDINATORS},
                    "vars": {
                        "vnfha_coordinator_groups": [
                            {"name": "web", "mode": "active-standby", "vip": VIP}],
                        "vnfha_coordinator_leases_stabilization": 2.0,
                        "vnfha_coordinator_log_format": "json",
                    },
                },
                "vnfha_agents": {
                    "hosts": {vm: {"ansible_host": hosts[vm].ip,
                                   "vnfha_agent_members": [
                                       {"group": "web", "member": f"web-{vm[2:]}",
                                        "priority": prio}]}
                              for vm, (_, prio) in VMS.items()},
                    "vars": {"vnfha_agent_log_format": "json"},
                },
            },
        }}
        self.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))

    def playbook(self, *extra: str, timeout: float = 900.0) -> tuple[int, str]:
        home = self.root / "ansible-home"
        env = {
            "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(home),
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.root / "cp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "LANG": "C.UTF-8",
        }
        log = self.root / f"run{len(self.runs) + 1}.log"
        with open(log, "wb") as f:  # streamed, so a run that hangs still shows where
            proc = self.fleet.ctl.popen(
                ["env", *[f"{k}={v}" for k, v in env.items()],
                 str(BIN / "ansible-playbook"), "-i", str(self.inventory),
                 str(ANSIBLE_DIR / "site.yml"), *extra],
                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            started = time.monotonic()
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                rc = -1
        print(f"ansible-playbook run {len(self.runs) + 1} {' '.join(extra)}: rc={rc} "
              f"in {time.monotonic() - started:.1f}s")
        output = log.read_text(errors="replace")
        self.runs.append(output)
        return rc, output

    def admin_tls(self) -> list[str]:
        """The CLI options of the admin certificate the playbook made on the controller."""
        pki = self.root / "pki"
        return ["--cacert", str(pki / "ca.pem"), "--cert", str(pki / "admin-ansible.pem"),
                "--key", str(pki / "admin-ansible-key.pem")]

    def cli(self, *argv: str, tls: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        """The vnfha CLI from the controller, with the admin certificate unless `tls`."""
        return self.fleet.ctl.run([str(BIN / "vnfha"), *(self.admin_tls() if tls is None
                                                           else tls), *argv], timeout=30)

    def status(self, endpoint: str | None = None) -> dict[str, Any]:
        """`vnfha status --json` from the controller (all coordinators, or one)."""
        eps = endpoint or ",".join(f"{self.fleet.hosts[c].ip}:7401" for c in COORDINATORS)
        proc = self.cli("--endpoint", eps, "--timeout", "2", "status", "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def web(self) -> dict[str, Any] | None:
        try:
            st = self.status()
        except AssertionError:
            return None
        return next((g for g in st["groups"] if g["name"] == "web"), None)

    def pid(self, host: str, service: str) -> int:
        return int(self.fleet.hosts[host].read(f"/run/vnfha/{service}.pid").strip())

    def diagnostics(self) -> str:
        out = []
        for name, h in self.fleet.hosts.items():
            out.append(f"--- {name} sshd: {self.fleet.sshd_log(name)[-500:]}")
            for svc in ("vnfha-coordinator", "vnfha-agent"):
                try:
                    tail = h.read(f"/var/log/vnfha/{svc}.log").splitlines()[-15:]
                except OSError:
                    continue
                out.append(f"--- {name} {svc}.log\n" + "\n".join(tail))
        if self.runs:
            out.append("--- last playbook run (tail)\n" + self.runs[-1][-6000:])
        return "\n".join(out)


def wheel_version(wheelhouse: Path) -> str:
    """The version of the vnfha wheel in `wheelhouse` (derived from git when built)."""
    (wheel,) = wheelhouse.glob("vnfha-*.whl")
    return wheel.name.split("-")[1]


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: set[int], timeout: float = 10.0) -> list[int]:
    """The pids still running after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (left := sorted(p for p in pids if alive(p))) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    if os.geteuid() != 0:
        pytest.fail("the Ansible deployment test needs root (namespaces, mounts)")
    Lab.sweep()
    root = Path(tempfile.mkdtemp(prefix="vh-ans-"))  # short: ssh control sockets live here
    wheelhouse = root / "wheelhouse"
    build = subprocess.run(["bash", str(ANSIBLE_DIR / "build-wheelhouse.sh"), str(wheelhouse)],
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHON": sys.executable})
    assert build.returncode == 0, build.stderr[-3000:]
    lab = Lab()
    dep: Deployment | None = None
    try:
        fleet = SshFleet(lab, root)
        for c, index in COORDINATORS.items():
            fleet.add(c, index)
        for vm, (index, _) in VMS.items():
            fleet.add(vm, index)
        fleet.wait_ready()
        dep = Deployment(fleet, root, wheelhouse.with_name("wheelhouse.tar"),
                         wheel_version(wheelhouse))
        yield dep
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(dep.diagnostics())
    finally:
        inside = {p for n in lab.namespaces() for p in pids_in_netns(n)}
        lab.close()  # kills sshd, the daemons it started, and the rest of each namespace
        leftover = wait_gone(inside)
        subprocess.run(["rm", "-rf", str(root)], check=False, timeout=60)
    assert not leftover, f"processes of the test hosts still alive: {leftover}"


def failure_report(out: str) -> str:
    """Every failed task with the lines after it, then the end of the output: the end
    alone hid which task failed on the first hosts (seen once in a full run)."""
    lines = out.splitlines()
    picked = [f"{i}: " + "\n".join(lines[max(0, i - 2):i + 12])
              for i, line in enumerate(lines) if "fatal: [" in line or "FAILED!" in line]
    return "\n---\n".join(picked[:10]) + "\n=== end of output ===\n" + out[-3000:]


def test_playbook_deploys_a_cluster_that_fails_over_and_reruns_unchanged(
        deployment: Deployment) -> None:
    dep = deployment
    fleet = dep.fleet

    # -- first run: install, configure, start ---------------------------------------------
    rc, out = dep.playbook()
    assert rc == 0, failure_report(out)
    first = recap(out)
    assert set(first) == {*COORDINATORS, *VMS}, first
    assert all(r["failed"] == 0 and r["unreachable"] == 0 and r["changed"] > 0
               for r in first.values()), first

    # -- the cluster formed: 3 coordinators agree on one leader, both agents registered ----
    answers = {c: dep.status(f"{fleet.hosts[c].ip}:7401")["coordinator"] for c in COORDINATORS}
    assert {a["node_id"] for a in answers.values()} == set(COORDINATORS)
    leaders = {a["leader_id"] for a in answers.values()}
    assert len(leaders) == 1 and leaders <= set(COORDINATORS), answers
    assert sum(a["is_leader"] for a in answers.values()) == 1, answers
    assert all(a["backend"] == "raft" for a in answers.values())
    web = wait(lambda: (g := dep.web()) and g["active"] == "web-1"
               and len(g["members"]) == 2 and g, 30, "web-1 active with two members")
    st = dep.status()
    assert {n["name"] for n in st["nodes"]} == set(VMS)
    roles = {m["name"]: (m["node"], m["role"]) for m in web["members"]}
    assert roles == {"web-1": ("vm1", "active"), "web-2": ("vm2", "standby")}
    first_epoch = web["epoch"]

    # ... the VIP is on vm1 alone, and the controller reaches it
    assert VIP in fleet.hosts["vm1"].host.addresses()
    assert VIP not in fleet.hosts["vm2"].host.addresses()
    assert fleet.ctl.ping(VIP.split("/")[0], count=3)

    # ... one secret on every coordinator, mode 0600, owned by the vnfha user, never logged
    secrets = set()
    for c in COORDINATORS:
        h = fleet.hosts[c]
        path = h.path("/etc/vnfha/cluster.secret")
        info = path.stat()
        assert info.st_mode & 0o777 == 0o600, oct(info.st_mode)
        passwd = {line.split(":")[0]: int(line.split(":")[2])
                  for line in h.read("/etc/passwd").splitlines() if line.count(":") >= 6}
        assert info.st_uid == passwd["vnfha"] != 0
        secrets.add(path.read_text().strip())
    assert len(secrets) == 1 and len(next(iter(secrets))) >= 32
    assert next(iter(secrets)) not in out
    # the vnfha user exists only on the coordinators (each machine has its own /etc)
    assert "vnfha:" not in fleet.hosts["vm1"].read("/etc/passwd")
    assert "vnfha:" not in Path("/etc/passwd").read_text()

    # ... mTLS is on: a call without a certificate is refused, the admin one works; every
    # host has its own certificate and a 0600 key (the coordinator's readable by vnfha
    # alone), the CA key stays on the controller, and no key appears in the output
    c1_api = f"{fleet.hosts['c1'].ip}:7401"
    plain = dep.cli("--endpoint", c1_api, "--timeout", "2", "status", "--json", tls=[])
    assert plain.returncode != 0 and plain.stdout == "", plain
    assert dep.status(c1_api)["coordinator"]["node_id"] == "c1"
    keys = {h: ["coordinator-key.pem", "viewer-key.pem"] for h in COORDINATORS}
    keys |= {vm: ["node-key.pem", "viewer-key.pem"] for vm in VMS}
    for h, names in keys.items():
        host = fleet.hosts[h]
        passwd = {line.split(":")[0]: int(line.split(":")[2])
                  for line in host.read("/etc/passwd").splitlines() if line.count(":") >= 6}
        for name in names:
            info = host.path(f"/etc/vnfha/certs/{name}").stat()
            assert info.st_mode & 0o777 == 0o600, (h, name, oct(info.st_mode))
            owner = "vnfha" if name == "coordinator-key.pem" else "root"
            assert info.st_uid == passwd[owner], (h, name, info.st_uid)
            key_line = host.read(f"/etc/vnfha/certs/{name}").splitlines()[1]
            assert key_line not in out, f"{h} {name} shown in the playbook output"
        assert not host.path("/etc/vnfha/certs/ca-key.pem").exists()
        assert host.path("/etc/vnfha/certs/ca.pem").read_bytes() == \
            (dep.root / "pki" / "ca.pem").read_bytes()
    for c in COORDINATORS:
        assert "\ntls:\n" in fleet.hosts[c].read("/etc/vnfha/coordinator.yaml")
    for vm in VMS:
        assert "insecure" not in fleet.hosts[vm].read("/etc/vnfha/agent.yaml")

    # ... the coordinators run as vnfha, not root
    for c in COORDINATORS:
        status = Path(f"/proc/{dep.pid(c, 'vnfha-coordinator')}/status").read_text()
        uid = int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[1])
        assert uid != 0
    pids = {(h, s): dep.pid(h, s) for h in COORDINATORS for s in ["vnfha-coordinator"]}
    pids |= {(vm, "vnfha-agent"): dep.pid(vm, "vnfha-agent") for vm in VMS}

    # -- second run: nothing changes, nothing restarts -------------------------------------
    rc, out = dep.playbook()
    assert rc == 0, failure_report(out)
    second = recap(out)
    assert set(second) == {*COORDINATORS, *VMS}, second
    changed = {h: r["changed"] for h, r in second.items() if r["changed"] or r["failed"]}
    assert not changed, f"second run changed something: {second}\n{out[-6000:]}"
    assert {k: dep.pid(*k) for k in pids} == pids, "a service was restarted by the second run"
    assert dep.web()["epoch"] == first_epoch

    # -- a bad value is refused by vnfha's own loader: nothing changed, nothing restarted --
    config_before = fleet.hosts["c1"].read("/etc/vnfha/coordinator.yaml")
    rc, out = dep.playbook("-e", json.dumps({"vnfha_coordinator_leases_keepalive_interval": 0.2}))
    assert rc != 0
    flat = " ".join(out.split())  # the yaml callback folds long messages
    assert re.search(r"leases\.keepalive_interval is 0\.2 and leases\.ttl is 0\.25, but the "
                     r"rule is keepalive_interval <= ttl/3", flat), out[-4000:]
    bad = recap(out)
    assert bad["c1"]["failed"] == 1 and bad["c1"]["changed"] == 0, bad
    assert all(bad[h]["changed"] == 0 and bad[h]["failed"] == 0 for h in bad if h != "c1"), bad
    assert fleet.hosts["c1"].read("/etc/vnfha/coordinator.yaml") == config_before
    assert {k: dep.pid(*k) for k in pids} == pids, "a refused config restarted a service"

    # -- failover: vm1 dies (cable pulled, every process in it killed) ---------------------
    vm1 = fleet.hosts["vm1"]
    fleet.lab.link_down(vm1.host)
    for pid in pids_in_netns(vm1.host.netns):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    web = wait(lambda: (g := dep.web()) and g["active"] == "web-2" and g, 20,
               "web-2 active after vm1 died")
    assert web["epoch"] > first_epoch
    vm2 = fleet.hosts["vm2"]
    wait(lambda: VIP in vm2.host.addresses(), 10, "the VIP on vm2")
    assert wait(lambda: fleet.ctl.ping(VIP.split("/")[0], count=1, timeout=0.5), 10,
                "the VIP answering from vm2")
    assert vm2.host.mac in fleet.ctl.neighbours().values()
    assert fleet.ctl.neighbours().get(VIP.split("/")[0]) == vm2.host.mac
