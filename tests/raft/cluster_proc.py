"""Run test nodes as real processes (own session each) and talk to their control ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vnfha_lab.ports import free_ports

NODE_MAIN = Path(__file__).with_name("node_main.py")




def call(port: int, req: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One request on a fresh connection; raises OSError if the node is gone."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("node closed the connection")
            buf += chunk
    return json.loads(buf)  # type: ignore[no-any-return]


@dataclass
class ProcCluster:
    """N node processes on loopback; restartable on the same data dirs."""

    root: Path
    n: int = 3
    extra_args: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        ports = free_ports(2 * self.n)
        self.raft = [f"127.0.0.1:{p}" for p in ports[: self.n]]
        self.ctl = ports[self.n :]
        self.procs = [None] * self.n
        self.starts = 0

    def start(self, i: int) -> None:
        peers = ",".join(a for a in self.raft if a != self.raft[i])
        d = self.root / f"node{i}"
        d.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        out = open(d / f"out-{self.starts}.log", "wb")
        self.procs[i] = subprocess.Popen(
            [sys.executable, str(NODE_MAIN), "--self", self.raft[i], "--peers", peers,
             "--data-dir", str(d / "data"), "--ctl-port", str(self.ctl[i]), *self.extra_args],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=str(NODE_MAIN.parent))
        out.close()

    def start_all(self) -> None:
        for i in range(self.n):
            self.start(i)

    def kill(self, i: int, whole_group: bool) -> None:
        p = self.procs[i]
        if p is None:
            return
        try:
            if whole_group:
                os.killpg(p.pid, signal.SIGKILL)
            else:
                os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)
        self.procs[i] = None

    def kill_all(self, whole_group: bool = True) -> None:
        for i in range(self.n):
            self.kill(i, whole_group)

    def stop_all(self) -> None:
        """Teardown: kill every process group we started, whatever state it is in."""
        for i, p in enumerate(self.procs):
            if p is not None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
                self.procs[i] = None

    def status(self, i: int) -> dict[str, Any] | None:
        try:
            return call(self.ctl[i], {"op": "status"}, timeout=1.0).get("ok")
        except OSError:
            return None

    def leader(self, timeout: float = 15.0) -> int:
        """Index of the node that is leader (and knows it), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(self.n):
                if self.procs[i] is None:
                    continue
                st = self.status(i)
                if st and st.get("role") == "leader":
                    return i
            time.sleep(0.05)
        raise AssertionError("no leader elected")

    def submit(self, i: int, cmd: dict[str, Any], timeout: float = 1.0) -> dict[str, Any]:
        return call(self.ctl[i], {"op": "submit", "cmd": cmd, "timeout": timeout},
                    timeout=timeout + 5)

    def state(self, i: int) -> dict[str, Any]:
        return call(self.ctl[i], {"op": "state"})
