"""Real systemd hosts for the packaging tests: systemd-nspawn containers on a lab switch.

Each `Machine` boots the cached Debian tree (build-rootfs.sh) with systemd as its PID 1,
inside the network namespace of a `Lab` host (so its eth0 and address are the lab's,
and nothing is attached to the root namespace). The tree is shared read-only: every
machine writes to its own throw-away overlay (`--volatile=overlay`), gone when it stops.

The container is not registered with systemd-machined (the test machine may have no
systemd as PID 1), so `machinectl` does not see it; `run` enters it with nsenter
instead, and `crash` is a power cut (SIGKILL to its PID 1 takes every process in it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from vnfha_lab.netlab import Host

HERE = Path(__file__).resolve().parent
ROOTFS_SCRIPT = HERE / "build-rootfs.sh"


def still_alive(pids: set[int] | list[int], timeout: float = 15.0) -> list[int]:
    """The processes of `pids` still running after up to `timeout` s: a closed machine's
    processes must be gone (a test run leaves nothing behind)."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if Path(f"/proc/{p}").exists()]) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def nspawn_missing() -> str | None:
    """Why systemd-nspawn containers cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (namespaces, systemd-nspawn)"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            return f"missing {tool}: run scripts/setup.sh"
    return None


def build_rootfs(timeout: float = 1500.0) -> Path:
    """The cached Debian tree (built on first use: minutes; then instant)."""
    r = subprocess.run(["bash", str(ROOTFS_SCRIPT)], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"build-rootfs.sh failed: {r.stderr[-3000:]}")
    return Path(r.stdout.strip().splitlines()[-1])


class Machine:
    """One booted container: a lab host whose processes run under their own systemd."""

    def __init__(self, host: Host, rootfs: Path, state: Path,
                 binds: dict[str, str] | None = None) -> None:
        self.host = host
        self.name = host.name
        self.state = state
        state.mkdir(parents=True, exist_ok=True)
        self.log_path = state / "console.log"
        argv = ["systemd-nspawn", "--quiet", "--boot", "--directory", str(rootfs),
                "--volatile=overlay", "--register=no", "--keep-unit",
                f"--machine={host.netns}", f"--hostname={host.name}",
                f"--network-namespace-path=/run/netns/{host.netns}",
                # VIPs, nftables leases: the agent needs it in its own namespace
                "--capability=CAP_NET_ADMIN",
                "--console=pipe", "--timezone=off", "--resolv-conf=off", "--link-journal=no"]
        for src, dst in (binds or {}).items():
            argv.append(f"--bind-ro={src}:{dst}")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self._leader: int | None = None

    def leader(self, timeout: float = 30.0) -> int:
        """The container's PID 1 as the host sees it (the child of systemd-nspawn)."""
        deadline = time.monotonic() + timeout
        while self._leader is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn for {self.name} exited "
                                   f"({self.proc.returncode}): {self.console()}")
            kids = []
            for task in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
                try:
                    kids += [int(p) for p in task.read_text().split()]
                except OSError:
                    continue
            if kids:
                self._leader = kids[0]
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no container process after {timeout}s")
            time.sleep(0.1)
        return self._leader

    def run(self, command: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """A shell command inside the machine (its namespaces, its root, its PATH)."""
        return subprocess.run(
            ["nsenter", "--target", str(self.leader()), "--all", "--",
             "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
             "/bin/sh", "-c", command],
            capture_output=True, text=True, timeout=timeout)

    def wait_booted(self, timeout: float = 120.0) -> str:
        """Wait until systemd has finished booting: 'running' or 'degraded'."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} stopped while booting: {self.console()}")
            try:
                state = self.run("systemctl is-system-running", timeout=10).stdout.strip()
            except (subprocess.TimeoutExpired, TimeoutError):
                state = "no answer"
            if state in ("running", "degraded"):
                return state
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not booted after {timeout}s (state {state!r}): "
                           f"{self.run('systemctl --failed --no-pager').stdout}")

    def read(self, path: str) -> str:
        """A file as the machine sees it."""
        return (Path(f"/proc/{self.leader()}/root") / path.lstrip("/")).read_text()

    def crash(self) -> None:
        """Power cut: SIGKILL to the container's PID 1 kills every process in it at once."""
        try:
            os.kill(self.leader(), signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self, timeout: float = 20.0) -> None:
        """Stop the machine (a crash if it is still up) and reap systemd-nspawn."""
        if self.proc.poll() is None:
            try:
                os.kill(self.leader(timeout=5), signal.SIGKILL)
            except (ProcessLookupError, RuntimeError, TimeoutError):
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def console(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
