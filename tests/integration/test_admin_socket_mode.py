"""The coordinator's admin socket passes every authorization rule (caller `local`), so
it must never be connectable by others, not even for a moment (attacker re-run, issue 11).

grpc binds and listens on a unix socket as soon as the port is added; the socket used
to get its 0600 mode only after the server had started, so under a loose umask (002,
000) anyone in the group (or anyone) could connect in between and keep that connection.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port

from vnfha.coordinator.config import parse_config
from vnfha.coordinator.server import Coordinator


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def test_admin_socket_is_born_private(tmp_path: Path, loose_umask: None,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "c1.sock"
    real_chmod = Path.chmod

    def chmod(self: Path, mode: int, **kw: object) -> None:
        if self == sock:  # what the socket is before any chmod fixes it up
            return
        real_chmod(self, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "chmod", chmod)
    c = Coordinator(parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{free_port()}",
                                 "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "admin_socket": str(sock),
    }))
    c.start()
    try:
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    finally:
        c.stop()
    assert os.umask(0o002) == 0o002  # the process umask is back as it was
