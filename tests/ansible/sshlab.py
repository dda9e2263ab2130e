"""Machines for Ansible to deploy to: network-namespace hosts, each with its own sshd.

Each target host is a `Lab` host (its own network namespace on the lab switch) whose
sshd runs under ``unshare --mount --uts`` with copy-on-write overlays on /etc, /opt,
/var and /root and a fresh tmpfs on /run. So every host has its own users and groups,
/etc/init.d, /etc/vnfha, /opt/vnfha, /var/lib/vnfha, pidfiles and hostname, and
nothing it writes reaches the real root filesystem: to Ansible (and to the daemons it
starts, which inherit the namespaces from sshd) they are separate machines reached over
real ssh. They share the kernel, /usr and the process id space.

Teardown is `Lab.close`: it kills every process in the hosts' network namespaces
(sshd, the sessions and every daemon started through them), after which the mount
namespaces, and the overlays in them, go away with their last process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from vnfha_lab.netlab import Host, Lab

OVERLAID = ("etc", "opt", "var", "root")
SSHD = "/usr/sbin/sshd"

SSHD_CONFIG = """\
ListenAddress {address}:22
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 64
MaxStartups 64
LogLevel ERROR
Subsystem sftp internal-sftp
"""

# Runs as the host's first process in its new mount and UTS namespaces, then becomes sshd.
BOOT = """\
set -eu
for d in {overlaid}; do
    mkdir -p "$STATE/upper/$d" "$STATE/work/$d"
    mount -t overlay overlay \\
        -o "lowerdir=/$d,upperdir=$STATE/upper/$d,workdir=$STATE/work/$d" "/$d"
done
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/sshd
hostname "$HOSTNAME"
printf '127.0.1.1 %s\\n' "$HOSTNAME" >> /etc/hosts
exec {sshd} -D -e -f "$STATE/sshd_config"
"""


@dataclass
class SshHost:
    """One deployable machine: its lab host, its state folder and its sshd."""

    host: Host
    state: Path
    sshd: subprocess.Popen[bytes]
    host_key_line: str

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def ip(self) -> str:
        assert self.host.ip4 is not None
        return self.host.ip4

    def path(self, inside: str) -> Path:
        """A path as this host sees it (through its sshd's root, in its mount namespace)."""
        return Path(f"/proc/{self.sshd.pid}/root") / inside.lstrip("/")

    def read(self, inside: str) -> str:
        return self.path(inside).read_text(errors="replace")


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True, capture_output=True, timeout=30)
    return (path.with_suffix(".pub")).read_text().strip()


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


class SshFleet:
    """Hosts with sshd plus a controller host `ctl`, on one lab switch."""

    def __init__(self, lab: Lab, root: Path) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("the Ansible deployment test needs root (namespaces, mounts)")
        missing = [tool for tool in ("ssh", "ssh-keygen", "unshare", "sudo")
                   if shutil.which(tool) is None] + ([SSHD] if not Path(SSHD).exists() else [])
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)}: run scripts/setup.sh")
        self.lab = lab
        self.root = root
        self.hosts: dict[str, SshHost] = {}
        self.key = root / "id_ed25519"
        self.known_hosts = root / "known_hosts"
        _keygen(self.key, "vnfha-ansible-test")
        self.ctl = lab.add_host("ctl", ipv4=lab.address(50))

    def add(self, name: str, index: int) -> SshHost:
        host = self.lab.add_host(name, ipv4=self.lab.address(index))
        state = self.root / name
        state.mkdir()
        host_key = state / "ssh_host_ed25519_key"
        pub = _keygen(host_key, name)
        authorized = state / "authorized_keys"
        shutil.copy(self.key.with_suffix(".pub"), authorized)
        assert host.ip4 is not None
        (state / "sshd_config").write_text(SSHD_CONFIG.format(
            address=host.ip4, host_key=host_key, authorized_keys=authorized))
        boot = BOOT.format(overlaid=" ".join(OVERLAID), sshd=SSHD)
        log = open(state / "sshd.log", "ab")
        proc = host.popen(["unshare", "--mount", "--uts", "--propagation", "private",
                           "sh", "-c", boot],
                          stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "STATE": str(state),
                               "HOSTNAME": name})
        log.close()
        key_type, key_data = pub.split()[:2]
        ssh_host = SshHost(host=host, state=state, sshd=proc,
                           host_key_line=f"{host.ip4} {key_type} {key_data}")
        self.hosts[name] = ssh_host
        return ssh_host

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Every sshd accepts connections (checked from the controller's namespace)."""
        deadline = time.monotonic() + timeout
        pending = dict(self.hosts)
        while pending and time.monotonic() < deadline:
            for name, h in list(pending.items()):
                if h.sshd.poll() is not None:
                    raise RuntimeError(f"sshd of {name} exited: {self.sshd_log(name)}")
                if self.ctl.call(_port_open, h.ip, 22):
                    del pending[name]
            time.sleep(0.1)
        if pending:
            raise TimeoutError(f"sshd not listening after {timeout}s on {sorted(pending)}")
        self.known_hosts.write_text("".join(h.host_key_line + "\n"
                                            for h in self.hosts.values()))

    def ssh_args(self) -> list[str]:
        return ["-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes"]

    def ssh(self, name: str, command: str, timeout: float = 30.0
            ) -> subprocess.CompletedProcess[str]:
        """Run a command on a host over ssh, from the controller."""
        return self.ctl.run(["ssh", "-i", str(self.key), *self.ssh_args(),
                             f"root@{self.hosts[name].ip}", command], timeout=timeout)

    def sshd_log(self, name: str) -> str:
        return (self.root / name / "sshd.log").read_text(errors="replace")[-2000:]
