"""A real HAProxy for lab hosts (tests, demo, benchmarks): config and process.

Runs `haproxy -W -db` (master-worker, in the foreground) inside a lab host's
namespace, so the lab tracks and kills it like any other process, and a
reload is SIGUSR2 to the master.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vnfha.agents.lb.haproxy import HaproxyAdmin, HaproxyError


def render_cfg(admin_socket: Path, bind: str, backend: str, servers: Mapping[str, str],
               check: bool = False, connect_timeout_ms: int = 100,
               redispatch: bool = False) -> str:
    """A TCP load balancer: one frontend on `bind`, one backend with `servers`
    (name -> host:port). `check`: HAProxy health-checks the servers itself."""
    lines = [
        "global",
        f"    stats socket {admin_socket} mode 600 level admin",
        "    stats timeout 5s",
        "defaults",
        "    mode tcp",
        f"    timeout connect {connect_timeout_ms}ms",
        "    timeout client 5s",
        "    timeout server 5s",
    ]
    if redispatch:
        lines += ["    retries 2", "    option redispatch 1"]
    else:
        lines += ["    retries 0"]
    lines += ["frontend front", f"    bind {bind}", f"    default_backend {backend}",
              f"backend {backend}", "    balance roundrobin"]
    for name, addr in servers.items():
        extra = " check inter 100ms fall 2 rise 2" if check else ""
        lines.append(f"    server {name} {addr}{extra}")
    return "\n".join(lines) + "\n"


def wait_ready(admin: HaproxyAdmin, backend: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if admin.servers_state(backend):
                return
        except HaproxyError as e:
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"haproxy admin socket not ready after {timeout}s: {last}")


def start(host: Any, cfg_path: Path, log_path: Path) -> subprocess.Popen[Any]:
    """Start HAProxy in `host` (a netlab Host); stdout/stderr to `log_path`."""
    log = open(log_path, "ab")
    try:
        return host.popen(["haproxy", "-W", "-db", "-f", str(cfg_path)], stdout=log, stderr=log)
    finally:
        log.close()


def reload(proc: subprocess.Popen[Any]) -> None:
    """What `systemctl reload haproxy` does: a new worker from the config file."""
    proc.send_signal(signal.SIGUSR2)
