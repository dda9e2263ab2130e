"""The Ansible roles deploy to real systemd hosts; `systemctl stop` of the active's agent
is a handover, and a power cut of the active fails over.

Five machines (c1, c2, c3, vm1, vm2) are systemd-nspawn containers booted from a cached
debootstrapped Debian tree (nspawn.py, build-rootfs.sh), each with systemd as its PID 1
and sshd, in its own network namespace on a lab switch (198.18.0.0/24). From a
controller namespace `ctl`, ansible-playbook runs ansible/site.yml over real ssh with
`vnfha_common_service_manager: systemd` (the units the roles render, enabled and driven
by systemctl), air-gapped, with both install methods in the one deployment: c1, c2 and
vm1 get the Debian package built by scripts/build-deb.sh (`vnfha_common_install: deb`),
c3 and vm2 a wheelhouse (pip). Then:

- `vnfha agent status` on each VM (the role sets the status socket) answers: vm1 holds
  its lease and the VIP, vm2 its lease only;
- `systemctl stop vnfha-agent` on vm1, the active: a handover (demoted, released by
  the agent, then web-2 promoted), never two VIP holders, the client served by vm2
  after a short gap, web-1 not quarantined nor lost, vm1's node shown stopped; then
  `systemctl start` brings it back as a standby;
- vm2, now the active, loses power (its cable pulled, its PID 1 killed: every process
  in it dies at once) and vm1 must take the role and the VIP.

Time: see docs/install.md "How it is tested" (most of it the playbook's first run); a
cold cache adds the debootstrap (6.5 minutes with the downloads at load 10), and a cold
package build its wheel downloads.
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
from nspawn import Machine, build_rootfs, nspawn_missing, still_alive  # tests/packaging on sys.path

from vnfha_lab.labcluster import VipChecker
from vnfha_lab.netlab import Host, Lab, pids_in_netns
from vnfha_lab.probe import gap, load_attempts

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent
VIP = "198.18.0.100/24"
VIP_ADDR = VIP.split("/")[0]
COORDINATORS = {"c1": 1, "c2": 2, "c3": 3}
VMS = {"vm1": (11, 200), "vm2": (12, 100)}
# Hosts that install the Debian package; the others install from the wheelhouse.
DEB_HOSTS = {"c1", "c2", "vm1"}
# Ansible's pip module imports packaging on the host, its apt module apt (python3-apt).
PREREQ = ["python3-packaging", "python3-apt", "python-apt-common", "distro-info-data"]
PROBE_SCRIPT = REPO / "lab" / "vnfha_lab" / "probe.py"  # stdlib only: runs on the hosts
PROBE_PORT = 8080
TTL = 0.25  # the roles' default lease TTL
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

    def __init__(self, lab: Lab, root: Path, rootfs: Path, wheelhouse: Path,
                 deb: Path) -> None:
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
                str(self.prereq): "/mnt/prereq",
                str(PROBE_SCRIPT): "/usr/local/lib/vnfha-test-probe.py"})
            known.append(f"{host.ip4} {host_key}\n")
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text("".join(known))
        self.wheelhouse = wheelhouse
        (wheel,) = wheelhouse.glob("vnfha-*.whl")
        self.version = wheel.name.split("-")[1]  # derived from git when it was built
        self.deb = deb
        self.runs: list[str] = []
        # For VipChecker: the VMs, none of them crashed while it runs.
        self.vms = list(VMS)
        self.crashed: set[str] = set()

    def vip_holders(self) -> set[str]:
        """VMs with the VIP configured (address only: stricter than "can answer")."""
        return {vm for vm in VMS if VIP in self.machines[vm].host.addresses()}

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
                    "hosts": {c: {"ansible_host": self.ip(c), **self.install(c)}
                              for c in COORDINATORS},
                    "vars": {"vnfha_coordinator_groups": [
                        {"name": "web", "mode": "active-standby", "vip": VIP}],
                        "vnfha_coordinator_leases_stabilization": 2.0},
                },
                "vnfha_agents": {
                    "hosts": {vm: {"ansible_host": self.ip(vm), **self.install(vm),
                                   "vnfha_agent_members": [{"group": "web",
                                                            "member": f"web-{vm[2:]}",
                                                            "priority": prio}]}
                              for vm, (_, prio) in VMS.items()},
                },
            },
        }}
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        return path

    def install(self, name: str) -> dict[str, str]:
        """Host variables of the install method: the .deb, or (default) the wheelhouse."""
        return {"vnfha_common_install": "deb", "vnfha_common_deb": str(self.deb)} \
            if name in DEB_HOSTS else {}

    def playbook(self, timeout: float = 1500.0) -> tuple[int, str]:
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

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The vnfha CLI from the controller with the admin certificate."""
        pki = self.root / "pki"
        eps = [f"{self.ip(c)}:7401" for c in COORDINATORS]
        return self.ctl.run([str(BIN / "vnfha"), "--cacert", str(pki / "ca.pem"),
                             "--cert", str(pki / "admin-ansible.pem"),
                             "--key", str(pki / "admin-ansible-key.pem"),
                             "--endpoint", ",".join(eps), "--timeout", "2", *args],
                            timeout=30)

    def status(self) -> dict[str, Any] | None:
        """`vnfha status --json` from the controller with the admin certificate, or None."""
        r = self.cli("status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def events(self) -> list[dict[str, Any]]:
        """`vnfha events --json`: the events the cluster keeps, oldest first."""
        r = self.cli("events", "--json", "--limit", "1000")
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def agent_status(self, vm: str) -> dict[str, Any]:
        """`vnfha agent status --json` on the VM itself, as an operator there runs it
        (no options: the default socket, which the role must have configured)."""
        r = self.machines[vm].run("/opt/vnfha/venv/bin/vnfha agent status --json")
        assert r.returncode == 0, (vm, r.stdout, r.stderr)
        doc: dict[str, Any] = json.loads(r.stdout)
        return doc

    def serve_probe(self, vm: str) -> None:
        """The test's TCP service on the VM (answers with its name), a transient unit."""
        r = self.machines[vm].run(
            "systemd-run --unit=vnfha-test-probe --quiet /usr/bin/python3 "
            f"/usr/local/lib/vnfha-test-probe.py serve --port {PROBE_PORT} --name {vm}")
        assert r.returncode == 0, r.stderr

    def start_probe(self, duration: float) -> Path:
        """A client on the controller connecting to the VIP every 10 ms (bounded)."""
        out = self.root / "probe.jsonl"
        self.ctl.popen([sys.executable, "-m", "vnfha_lab.probe", "probe",
                        "--target", f"{VIP_ADDR}:{PROBE_PORT}", "--interval", "0.01",
                        "--timeout", "0.05", "--duration", str(duration),
                        "--out", str(out)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return out

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
              "FragmentPath,NRestarts,Result")
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def served_by(probe: Path, vm: str, after: float) -> bool:
    """Did `vm` answer one of the client's probes at or after `after`?"""
    return any(a.ok and a.who == vm and a.at >= after for a in load_attempts(str(probe)))


def web_member(web: dict[str, Any], name: str) -> dict[str, Any]:
    return next(mb for mb in web["members"] if mb["name"] == name)


def uid_of(m: Machine, pid: str) -> int:
    status = m.run(f"cat /proc/{pid}/status").stdout
    return int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[1])


@pytest.fixture
def site(request: pytest.FixtureRequest, deb_package: Path) -> Iterator[Site]:
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
        s = Site(lab, root, rootfs, wheelhouse, deb_package)
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
        left = still_alive(inside)
        shutil.rmtree(root, ignore_errors=True)
    assert not left, f"processes of the machines still alive: {left}"


def test_playbook_on_systemd_hosts_then_a_stop_hands_over_and_a_power_cut_fails_over(
        site: Site) -> None:
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

    # ... each host runs the install it was given: the .deb (dpkg owns the venv, the
    # package's units are there but the role's own in /etc/systemd/system run), or pip
    # from the wheelhouse (no package)
    for name, machine in m.items():
        owner = machine.run("dpkg -S /opt/vnfha/venv/bin/vnfha")
        if name in DEB_HOSTS:
            assert owner.returncode == 0 and owner.stdout.startswith("vnfha:"), (name, owner)
            assert machine.run("test -f /lib/systemd/system/vnfha-agent.service"
                               ).returncode == 0, name
        else:
            assert owner.returncode != 0, (name, owner.stdout)
        assert machine.run("/opt/vnfha/venv/bin/vnfha --version").returncode == 0, name

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
        assert u["FragmentPath"] == "/etc/systemd/system/vnfha-agent.service"
        assert uid_of(m[name], u["MainPID"]) == 0

    # ... the cluster: one leader, web-1 active on vm1 with the VIP
    web = wait(lambda: (g := s.web()) and g["active"] == "web-1" and len(g["members"]) == 2
               and g, 60, "web-1 active with two members")
    first_epoch = web["epoch"]
    assert VIP in m["vm1"].host.addresses()
    assert VIP not in m["vm2"].host.addresses()
    assert s.ctl.ping(VIP_ADDR, count=3)

    # -- `vnfha agent status` on each VM: the role configured the status socket ----------
    # Both in one document: failsafe is on by default, so a lease that lapsed for a
    # moment on this loaded machine (TTL 0.25 s) keeps the VIP held meanwhile, and a
    # document taken in that moment says so; the next renewal makes them agree again.
    a1 = wait(lambda: (d := s.agent_status("vm1"))["members"][0]["vip_held"]
              and d["lease"]["held"] and d, 10,
              "vm1's agent reporting its lease and the VIP held")
    assert a1["node"] == "vm1", a1
    assert len(a1["coordinators"]) == len(COORDINATORS), a1
    (w1,) = a1["members"]
    assert (w1["member"], w1["role"], w1["epoch"]) == ("web-1", "active", first_epoch), w1
    assert w1["vip"] is not None and w1["vip"].split("/")[0] == VIP_ADDR, w1
    a2 = wait(lambda: (d := s.agent_status("vm2"))["lease"]["held"] and d, 10,
              "vm2's agent reporting its lease held")
    (w2,) = a2["members"]
    assert (w2["member"], w2["role"], w2["vip_held"]) == ("web-2", "standby", False), w2
    mode = m["vm1"].run("stat -c %a /run/vnfha/agent-status.sock").stdout.strip()
    assert mode == "600", mode  # the agent's user (root) only

    # -- systemd restarts a coordinator that dies (Restart=on-failure) -------------------
    before = unit(m["c3"], "vnfha-coordinator")
    m["c3"].run(f"kill -KILL {before['MainPID']}")
    wait(lambda: (u := unit(m["c3"], "vnfha-coordinator"))["ActiveState"] == "active"
         and u["MainPID"] not in ("0", before["MainPID"]), 30, "c3's coordinator restarted")
    assert int(unit(m["c3"], "vnfha-coordinator")["NRestarts"]) > int(before["NRestarts"])
    wait(lambda: (st := s.status()) and st["coordinator"]["leader_id"], 30, "a leader")

    # -- `systemctl stop` of the active's agent: a handover, not a failure ---------------
    for vm in VMS:
        s.serve_probe(vm)
    probe = s.start_probe(duration=90)
    wait(lambda: served_by(probe, "vm1", 0), 15, "the client served by vm1")
    seen = max(e["seq"] for e in s.events())
    checker = VipChecker(s, max_seconds=90).start()  # type: ignore[arg-type]  # duck-typed
    at = time.time()
    stopped = m["vm1"].run("systemctl stop vnfha-agent", timeout=60)
    took = time.time() - at
    assert stopped.returncode == 0, stopped.stderr
    wait(lambda: s.vip_holders() == {"vm2"}, 10, "the VIP on vm2")
    wait(lambda: served_by(probe, "vm2", at), 10, "the client served by vm2")
    web = wait(lambda: (g := s.web()) and g["active"] == "web-2" and g, 10, "web-2 active")
    time.sleep(4 * TTL)  # long after vm1's lease ran out: still a stop, not a failure
    log = checker.stop()
    assert log.max_holders == 1, log.dual_windows()
    client_gap = gap(load_attempts(str(probe)), "vm2", at)
    assert client_gap is not None
    print(f"systemctl stop of the active's agent: returned after {took:.2f} s; client gap "
          f"{client_gap * 1000:.0f} ms (last answer from vm1 to first from vm2)")
    # ... the unit ended by the agent's own exit: no stop timeout, nothing left to kill
    u = unit(m["vm1"], "vnfha-agent")
    assert (u["ActiveState"], u["Result"]) == ("inactive", "success"), u
    journal = m["vm1"].run("journalctl -u vnfha-agent --no-pager -o cat").stdout
    assert "drained" in journal and "SIGKILL" not in journal, journal[-3000:]
    # ... the coordinators handed over (demoted, released as the agent confirmed, then
    # promoted), vm1 is shown stopped, web-1 neither lost nor quarantined
    assert web["epoch"] > first_epoch
    web = s.web()
    assert web is not None and web["active"] == "web-2", web
    w1 = web_member(web, "web-1")
    assert not w1["quarantined"] and w1["health"] == "healthy", w1
    st = s.status()
    assert st is not None and next(n for n in st["nodes"] if n["name"] == "vm1")["stopped"]
    new = [e for e in s.events() if e["seq"] > seen]
    kinds = [(e["kind"], e["member"] or e["node"]) for e in new]
    assert kinds.index(("node_stopped", "vm1")) < kinds.index(("demoted", "web-1")) \
        < kinds.index(("released", "web-1")) < kinds.index(("promoted", "web-2")), kinds
    released = [e for e in new if e["kind"] == "released" and e["member"] == "web-1"]
    assert "agent confirmed" in released[-1]["reason"], released
    assert not [e for e in new if e["member"] == "web-1" and "lost" in e["reason"]], new

    # -- `systemctl start`: vm1 is back, as a standby; starting again is no failure ------
    started = m["vm1"].run("systemctl start vnfha-agent", timeout=60)
    assert started.returncode == 0, started.stderr
    wait(lambda: (st := s.status()) and not next(n for n in st["nodes"]
                                                 if n["name"] == "vm1")["stopped"],
         30, "vm1 registered again")
    web = wait(lambda: (g := s.web()) and web_member(g, "web-1")["health"] == "healthy"
               and g, 30, "web-1 healthy again")
    assert web["active"] == "web-2" and not web_member(web, "web-1")["quarantined"], web
    assert s.vip_holders() == {"vm2"}
    second_epoch = web["epoch"]

    # -- power cut of vm2, now the active: cable pulled, every process in it gone at once -
    s.lab.link_down(m["vm2"].host)
    m["vm2"].crash()
    m["vm2"].proc.wait(timeout=30)
    web = wait(lambda: (g := s.web()) and g["active"] == "web-1" and g, 30,
               "web-1 active after vm2 lost power")
    assert web["epoch"] > second_epoch
    wait(lambda: VIP in m["vm1"].host.addresses(), 10, "the VIP on vm1")
    assert wait(lambda: s.ctl.ping(VIP_ADDR, count=1, timeout=0.5), 10,
                "the VIP answering from vm1")
    assert s.ctl.neighbours().get(VIP_ADDR) == m["vm1"].host.mac
    # ... and the surviving agent is the one systemctl started, never restarted by systemd
    assert unit(m["vm1"], "vnfha-agent")["NRestarts"] == "0"
