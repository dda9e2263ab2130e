"""Fixtures and a raw-socket capture for tests that build network-namespace hosts.

Import the fixtures into a test module (``from netns.fixtures import lab``) or a
conftest. Every lab is closed even when the test fails, and the first lab of a
session sweeps namespaces left behind by dead runs (a SIGKILLed pytest, say).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from types import TracebackType

import pytest

from vnfha_lab.netlab import Host, Lab

ETH_P_ALL = 0x0003


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("network-namespace tests need root")


@pytest.fixture(scope="session")
def swept_labs() -> Iterator[list[str]]:
    """Namespaces of dead lab runs, removed once per session (before and after)."""
    need_root()
    swept = Lab.sweep()
    yield swept
    Lab.sweep()


@pytest.fixture
def lab(swept_labs: list[str]) -> Iterator[Lab]:
    """A fresh lab (switch only); add hosts with ``lab.add_host``."""
    with Lab() as made:
        yield made


class Capture:
    """Frames seen on a host's eth0, through an AF_PACKET socket opened in its namespace.

    Open it before sending, then `wait_for` a frame. Every read is bounded in
    frames and time.
    """

    def __init__(self, host: Host, ethertype: int = ETH_P_ALL) -> None:
        self.host = host

        def open_socket() -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
            s.bind((host.ifname, 0))
            return s

        self.sock = host.call(open_socket)

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def frames(self, timeout: float = 1.0, max_frames: int = 1000) -> list[bytes]:
        """Everything that arrives within ``timeout`` (at most ``max_frames``)."""
        return self._read(lambda _f: False, timeout, max_frames)

    def wait_for(self, match: Callable[[bytes], bool], count: int = 1, timeout: float = 2.0,
                 max_frames: int = 1000) -> list[bytes]:
        """The first ``count`` frames for which ``match`` is true (fewer on timeout)."""
        got: list[bytes] = []

        def collect(frame: bytes) -> bool:
            if match(frame):
                got.append(frame)
            return len(got) >= count

        self._read(collect, timeout, max_frames)
        return got

    def _read(self, stop: Callable[[bytes], bool], timeout: float,
              max_frames: int) -> list[bytes]:
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(out) < max_frames and (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                frame, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                break
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            out.append(frame)
            if stop(frame):
                break
        return out
