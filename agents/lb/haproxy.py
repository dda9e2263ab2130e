"""HAProxy's runtime API on its admin (stats) socket: one command per connection.

Needs `stats socket <path> level admin` in haproxy.cfg's global section. A
command that succeeds answers an empty line; anything else is HAProxy's
error text, raised as `HaproxyError` with the command that caused it.
"""

from __future__ import annotations

import socket

from vnfha.agents.lb.diff import ServerState, parse_servers_state

STATES = ("ready", "drain", "maint")


class HaproxyError(Exception):
    """The socket is unreachable or HAProxy refused a command."""


class HaproxyAdmin:
    def __init__(self, socket_path: str, timeout: float = 1.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def command(self, line: str) -> str:
        if "\n" in line or ";" in line:
            raise ValueError(f"one command per call, no separators: {line!r}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.socket_path)
                s.sendall(line.encode() + b"\n")
                chunks = []
                while True:
                    data = s.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
        except OSError as e:
            raise HaproxyError(f"admin socket {self.socket_path}: {e}") from e
        return b"".join(chunks).decode(errors="replace")

    def servers_state(self, backend: str) -> dict[str, ServerState]:
        text = self.command(f"show servers state {backend}")
        if text.strip() and not text.lstrip().startswith("1"):
            raise HaproxyError(f"show servers state {backend}: {text.strip()}")
        try:
            return parse_servers_state(text, backend)
        except ValueError as e:
            raise HaproxyError(f"show servers state {backend}: {e}") from e

    def set_state(self, backend: str, server: str, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        cmd = f"set server {backend}/{server} state {state}"
        answer = self.command(cmd).strip()
        if answer:
            raise HaproxyError(f"{cmd}: {answer}")
