"""The Ansible roles deploy to real systemd hosts, and a power cut of the active fails over.

Five machines (c1, c2, c3, vm1, vm2) are systemd-nspawn containers booted from a cached
debootstrapped Debian tree (nspawn.py, build-rootfs.sh), each with systemd as its PID 1
and sshd, in its own network namespace on a lab switch (198.18.0.0/24). From a
controller namespace `ctl`, ansible-playbook runs ansible/site.yml over real ssh with
`vnfha_common_service_manager: systemd` (the units the roles render, enabled and driven
by systemctl) and an air-gapped install from a wheelhouse. Then vm1, the active, loses
power (its cable pulled, its PID 1 killed: every process in it dies at once) and vm2
must take the role and the VIP.

Time: with a warm rootfs cache 111 s on an idle 2-core machine (273 s at load 50), most
of it the playbook's first run; a cold cache adds the debootstrap (6.5 minutes with the
downloads at load 10; see docs/install.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
from nspawn import Machine, build_rootfs, nspawn_missing  # tests/packaging on sys.path

from vnfha_lab.netlab import Host, Lab, pids_in_netns

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent
VIP = "198.18.0.100/24"
COORDINATORS = {"c1": 1, "c2": 2, "c3": 3}
VMS = {"vm1": (11, 200), "vm2": (12, 100)}
PREREQ = ["python3-packaging"]
RECAP_RE = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                      r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)")


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of an ansible-playbook run: host -> ok/changed/unreachable/failed."""
    _, _, tail = output.rpartition("PLAY RECAP")
    return {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
            for line in tail.splitlines() if (m := RECAP_RE.match(line.strip()))}


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Site:
    """The lab, its machines, the controller and the playbook runs."""

    def __init__(self, lab: Lab, root: Path, rootfs: Path, wheelhouse: Path) -> None:
        self.lab = lab
        self.root = root
        self.key = root / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vnfha-nspawn",
                        "-f", str(self.key)], check=True, capture_output=True, timeout=30)
        # One host key for all machines (they boot one tree): pinned, not trusted on sight.
        host_key = " ".join((rootfs / "etc/ssh/ssh_host_ed25519_key.pub").read_text()
                            .split()[:2])
        self.ctl = lab.add_host("ctl", ipv4=lab.address(50))
        self.machines: dict[str, Machine] = {}
        known = []
        # The hosts have no package mirror: what the roles need from Debian beyond the
        # tree (python3-packaging, for Ansible's pip module) is preinstalled, as an image
        # for an air-gapped site would have it.
        self.prereq = root / "prereq"
        self.prereq.mkdir()
        got = subprocess.run(["apt-get", "download", *PREREQ], cwd=self.prereq,
                             capture_output=True, text=True, timeout=300)
        assert got.returncode == 0, got.stderr
        for name, index in {**COORDINATORS, **{v: i for v, (i, _) in VMS.items()}}.items():
            host = lab.add_host(name, ipv4=lab.address(index))
            self.machines[name] = Machine(host, rootfs, root / name, binds={
                str(self.key.with_suffix(".pub")): "/root/.ssh/authorized_keys",
                str(self.prereq): "/mnt/prereq"})
            known.append(f"{host.ip4} {host_key}\n")
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text("".join(known))
        self.wheelhouse = wheelhouse
        (wheel,) = wheelhouse.glob("vnfha-*.whl")
        self.version = wheel.name.split("-")[1]  # derived from git when it was built
        self.runs: list[str] = []

    def ip(self, name: str) -> str:
        ip = self.machines[name].host.ip4
        assert ip is not None
        return ip

    def ssh_args(self) -> list[str]:
        return ["-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]

    def ssh_ready(self, name: str) -> bool:
        r = self.ctl.run(["ssh", "-i", str(self.key), *self.ssh_args(),
                          f"root@{self.ip(name)}", "systemctl is-system-running"], timeout=20)
        return r.stdout.strip() in ("running", "degraded")

    def inventory(self) -> Path:
        path = self.root / "inventory.yml"
        inv: dict[str, Any] = {"all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(self.key),
                "ansible_ssh_common_args": " ".join(self.ssh_args()),
                "ansible_python_interpreter": "/usr/bin/python3",
                "vnfha_common_service_manager": "systemd",
                "vnfha_common_version": self.version,
                "vnfha_common_wheelhouse": str(self.wheelhouse.with_name("wheelhouse.tar")),
                "vnfha_common_tls_pki_dir": str(self.root / "pki"),
            },
            "children": {
                "vnfha_coordinators": {
                    "hosts": {c: {"ansible_host": self.ip(c)} for c in COORDINATORS},
                    "vars": {"vnfha_coordinator_groups": [
                        {"name": "web", "mode": "active-standby", "vip": VIP}],
                        "vnfha_coordinator_leases_stabilization": 2.0},
                },
                "vnfha_agents": {
                    "hosts": {vm: {"ansible_host": self.ip(vm), "vnfha_agent_members": [
                        {"group": "web", "member": f"web-{vm[2:]}", "priority": prio}]}
                        for vm, (_, prio) in VMS.items()},
                },
            },
        }}
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        return path

    def playbook(self, timeout: float = 900.0) -> tuple[int, str]:
        home = self.root / "ansible-home"
        env = {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home),
               "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"), "ANSIBLE_HOME": str(home),
               "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
               "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.root / "cp"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "LANG": "C.UTF-8"}
        log = self.root / f"run{len(self.runs) + 1}.log"
        started = time.monotonic()
        with open(log, "wb") as f:  # streamed, so a run that hangs still shows where
            proc = self.ctl.popen(["env", *[f"{k}={v}" for k, v in env.items()],
                                   str(BIN / "ansible-playbook"), "-i", str(self.inventory()),
                                   str(ANSIBLE_DIR / "site.yml")],
                                  stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                rc = -1
        print(f"ansible-playbook run {len(self.runs) + 1}: rc={rc} "
              f"in {time.monotonic() - started:.1f}s")
        out = log.read_text(errors="replace")
        self.runs.append(out)
        return rc, out

    def status(self, endpoints: list[str] | None = None) -> dict[str, Any] | None:
        """`vnfha status --json` from the controller with the admin certificate, or None."""
        pki = self.root / "pki"
        eps = endpoints or [f"{self.ip(c)}:7401" for c in COORDINATORS]
        r = self.ctl.run([str(BIN / "vnfha"), "--cacert", str(pki / "ca.pem"),
                          "--cert", str(pki / "admin-ansible.pem"),
                          "--key", str(pki / "admin-ansible-key.pem"),
                          "--endpoint", ",".join(eps), "--timeout", "2", "status", "--json"],
                         timeout=30)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def web(self) -> dict[str, Any] | None:
        st = self.status()
        return next((g for g in st["groups"] if g["name"] == "web"), None) if st else None

    def diagnostics(self) -> str:
        out = []
        for name, m in self.machines.items():
            svc = "vnfha-coordinator" if name in COORDINATORS else "vnfha-agent"
            if m.proc.poll() is None:
                j = m.run(f"journalctl -u {svc} --no-pager -n 20 -o cat", timeout=20)
                out.append(f"--- {name} {svc}\n{j.stdout[-3000:]}")
            else:
                out.append(f"--- {name} (stopped) console\n{m.console()}")
        if self.runs:
            out.append("--- last playbook run (tail)\n" + self.runs[-1][-6000:])
        return "\n".join(out)


def unit(m: Machine, name: str) -> dict[str, str]:
    """Properties of a systemd unit inside a machine."""
    r = m.run(f"systemctl show {name} -p ActiveState,UnitFileState,MainPID,User,"
              "FragmentPath,NRestarts")
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def uid_of(m: Machine, pid: str) -> int:
    status = m.run(f"cat /proc/{pid}/status").stdout
    return int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[1])


@pytest.fixture
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    why = nspawn_missing()
    if why:
        pytest.fail(f"systemd host test: {why}")
    Lab.sweep()
    root = Path(tempfile.mkdtemp(prefix="vh-nsp-"))  # short: ssh control sockets live here
    wheelhouse = root / "wheelhouse"
    lab = Lab()
    s: Site | None = None
    try:
        build = subprocess.run(["bash", str(ANSIBLE_DIR / "build-wheelhouse.sh"),
                                str(wheelhouse)], capture_output=True, text=True, timeout=900,
                               env={**os.environ, "PYTHON": sys.executable})
        assert build.returncode == 0, build.stderr[-3000:]
        rootfs = build_rootfs()
        s = Site(lab, root, rootfs, wheelhouse)
        for m in s.machines.values():
            m.wait_booted(timeout=300)
            pre = m.run("dpkg -i /mnt/prereq/*.deb", timeout=300)
            assert pre.returncode == 0, pre.stdout + pre.stderr
        yield s
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(s.diagnostics())
    finally:
        hosts: list[Host] = list(lab.hosts.values())
        for m in (s.machines.values() if s else []):
            m.close()
        inside = {p for h in hosts for p in pids_in_netns(h.netns)}
        lab.close()
        deadline = time.monotonic() + 15
        while (left := [p for p in inside if Path(f"/proc/{p}").exists()]) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)
    assert not left, f"processes of the machines still alive: {left}"


def test_playbook_on_systemd_hosts_then_a_power_cut_fails_over(site: Site) -> None:
    s = site
    m = s.machines
    # -- every machine booted with systemd as PID 1 and is reachable over ssh ------------
    for name, machine in m.items():
        assert machine.run("readlink /proc/1/exe").stdout.strip().endswith("/systemd"), name
    wait(lambda: all(s.ssh_ready(n) for n in m), 60, "sshd on every machine")

    # -- the playbook with the systemd service manager -----------------------------------
    rc, out = s.playbook()
    assert rc == 0, out[-6000:]
    first = recap(out)
    assert set(first) == {*COORDINATORS, *VMS}, first
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in first.values()), first

    # ... each service is a systemd unit: active, enabled at boot, from the rendered file;
    # the coordinator runs as the vnfha user, the agent as root
    for name in COORDINATORS:
        u = unit(m[name], "vnfha-coordinator")
        assert (u["ActiveState"], u["UnitFileState"]) == ("active", "enabled"), (name, u)
        assert u["FragmentPath"] == "/etc/systemd/system/vnfha-coordinator.service"
        assert u["User"] == "vnfha" and uid_of(m[name], u["MainPID"]) != 0
    for name in VMS:
        u = unit(m[name], "vnfha-agent")
        assert (u["ActiveState"], u["UnitFileState"]) == ("active", "enabled"), (name, u)
        assert uid_of(m[name], u["MainPID"]) == 0

    # ... the cluster: one leader, web-1 active on vm1 with the VIP
    web = wait(lambda: (g := s.web()) and g["active"] == "web-1" and len(g["members"]) == 2
               and g, 60, "web-1 active with two members")
    first_epoch = web["epoch"]
    assert VIP in m["vm1"].host.addresses()
    assert VIP not in m["vm2"].host.addresses()
    assert s.ctl.ping(VIP.split("/")[0], count=3)

    # -- systemd restarts a coordinator that dies (Restart=on-failure) -------------------
    before = unit(m["c3"], "vnfha-coordinator")
    m["c3"].run(f"kill -KILL {before['MainPID']}")
    wait(lambda: (u := unit(m["c3"], "vnfha-coordinator"))["ActiveState"] == "active"
         and u["MainPID"] not in ("0", before["MainPID"]), 30, "c3's coordinator restarted")
    assert int(unit(m["c3"], "vnfha-coordinator")["NRestarts"]) > int(before["NRestarts"])

    # -- power cut of vm1, the active: cable pulled, every process in it gone at once -----
    s.lab.link_down(m["vm1"].host)
    m["vm1"].crash()
    m["vm1"].proc.wait(timeout=30)
    web = wait(lambda: (g := s.web()) and g["active"] == "web-2" and g, 30,
               "web-2 active after vm1 lost power")
    assert web["epoch"] > first_epoch
    wait(lambda: VIP in m["vm2"].host.addresses(), 10, "the VIP on vm2")
    assert wait(lambda: s.ctl.ping(VIP.split("/")[0], count=1, timeout=0.5), 10,
                "the VIP answering from vm2")
    assert s.ctl.neighbours().get(VIP.split("/")[0]) == m["vm2"].host.mac
    # ... and the surviving agent is still the same systemd service, not restarted
    assert unit(m["vm2"], "vnfha-agent")["NRestarts"] == "0"
