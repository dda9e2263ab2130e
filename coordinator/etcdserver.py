"""A throwaway single-member etcd on loopback, for tests, benchmarks and the demo.

Runs Debian's `etcd` binary (package etcd-server, installed by scripts/setup.sh)
on two free loopback ports with its data in a folder the caller owns, so it can
be stopped and started again on the same data (an etcd restart). Never a mock:
if the binary is missing, `start` raises and the test that needed it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from vnfha.coordinator.ports import free_port


class EtcdServer:
    def __init__(self, data_dir: Path, name: str = "etcd-test",
                 binary: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.name = name
        found = binary or shutil.which("etcd") or "/usr/bin/etcd"
        if not Path(found).exists():
            raise FileNotFoundError("etcd binary not found: run scripts/setup.sh "
                                    "(installs Debian's etcd-server)")
        self.binary = found
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def start(self, timeout: float = 20.0) -> None:
        """Start (or start again on the same data) and wait until it answers."""
        assert self.proc is None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary, "--name", self.name, "--data-dir", str(self.data_dir / "etcd"),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"{self.name}={peer}",
                 "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}; see "
                                   f"{self.log_path}:\n{self.tail()}")
            if self.healthy():
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"etcd did not become healthy in {timeout} s; see {self.log_path}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=0.5) as r:
                return b'"health":"true"' in r.read()
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL with kill=True) the whole process group and reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
