"""`vnfha agent status`: what this VM's agent believes, over a local unix socket.

An operator on a VM asks "does this agent hold a lease, which coordinators answer it,
does it hold the VIP, what was it last told?" without going through the coordinators
(which may be the very thing that is unreachable). The agent serves a JSON document on
a unix socket of its own (`status.socket`, docs/agent.md), beside the role API socket:

* the server **reads nothing**: a client connects, receives one JSON document and the
  connection closes. There is no request to parse, so no bad input can reach the agent;
* the socket is mode 0600: only the agent's user (and root) may connect. The document
  holds no secret, but lease and coordinator details are the operator's business, not
  every local process's;
* each connection is answered by the accepting thread with a bounded send, so a client
  that does not read costs at most the send timeout, and nothing it does can touch the
  agent's lease or role loops.

`build_status` is pure (the agent hands it plain values), so the document's shape is
tested without sockets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("vnfha.agent.status")

#: Owner only (the agent's user; root can always connect).
SOCKET_MODE = 0o600
#: What a client waits for a document, and the server for a client to take it.
IO_TIMEOUT = 2.0
#: The largest document a client accepts (a VM hosts at most 1024 members).
MAX_DOCUMENT = 4 << 20
#: How long the agent may take to build the document before the answer says it is stuck.
BUILD_TIMEOUT = 1.0


@dataclass(frozen=True)
class CoordinatorLink:
    """One keepalive stream, as the agent last saw it."""

    endpoint: str
    coordinator_id: str = ""  # from its last answer; "" if it never answered
    last_answer_age: float | None = None  # seconds since its last answer
    last_result: str = ""  # ack, unknown-node, invalid
    acks: int = 0  # acknowledgements counted toward the lease


@dataclass(frozen=True)
class MemberState:
    group: str
    member: str
    active_epoch: int  # 0: not acting as active
    seen_epoch: int
    healthy: bool
    reason: str
    vip: str  # the group's VIP from the last assignment; "" if none
    vip_held: bool
    assigned_role: str | None  # "active"/"standby"/... from the last assignment; None: none
    assigned_epoch: int


@dataclass(frozen=True)
class FailsafeGroup:
    """One group this agent hosts a member of, as failsafe sees it."""

    group: str
    lease: float  # the cluster's failsafe lease from the last assignment; 0: off
    engaged: bool  # its active role is kept on failsafe grants now
    epoch: int = 0  # the epoch kept (engaged only)
    grantors: tuple[str, ...] = ()  # other members whose grant to us runs now
    remaining: float | None = None  # seconds failsafe still keeps the VIP (engaged only)


@dataclass(frozen=True)
class FailsafeState:
    listener: str  # host:port of this agent's failsafe listener; "" if none
    off_reason: str  # why there is none ("" if there is one)
    groups: tuple[FailsafeGroup, ...] = ()
    granted: int = 0  # failsafe lease requests this agent answered: granted
    refused: int = 0


def failsafe_section(fs: FailsafeState) -> dict[str, Any]:
    """The document's "failsafe" part (not "fail_safe", the fail-stop state)."""
    return {
        "listener": fs.listener or None, "no_listener_reason": fs.off_reason or None,
        "answered": {"granted": fs.granted, "refused": fs.refused},
        "groups": [{
            "group": g.group, "lease_seconds": g.lease, "engaged": g.engaged,
            "epoch": g.epoch if g.engaged else None, "grantors": list(g.grantors),
            "remaining_seconds": (round(g.remaining, 3) if g.engaged
                                  and g.remaining is not None else None),
        } for g in fs.groups],
    }


def build_status(*, node: str, pid: int, uptime: float, lease_remaining: float | None,
                 quorum: int, cluster_size: int, announced: Sequence[str],
                 links: Sequence[CoordinatorLink], members: Sequence[MemberState],
                 assignment_revision: int, failed: str | None,
                 blocked: Mapping[str, str], guardian: str, kernel_lease: str,
                 vip_managed: bool, failsafe: FailsafeState | None = None) -> dict[str, Any]:
    """The status document (its shape is documented in docs/cli.md, `agent status`)."""
    held = lease_remaining is not None and lease_remaining > 0
    doc = {
        "node": node, "pid": pid, "uptime_seconds": round(uptime, 3),
        "lease": {
            "held": held,
            "remaining_seconds": round(lease_remaining, 3) if held else None,
            "quorum": quorum, "cluster_size": cluster_size,
            "announced_coordinators": sorted(announced),
        },
        "coordinators": [{
            "endpoint": c.endpoint, "id": c.coordinator_id or None,
            "last_answer_age_seconds": (None if c.last_answer_age is None
                                        else round(c.last_answer_age, 3)),
            "last_result": c.last_result or None, "acks": c.acks,
        } for c in links],
        "members": [{
            "group": m.group, "member": m.member,
            "role": "active" if m.active_epoch else "standby",
            "epoch": m.active_epoch or None, "seen_epoch": m.seen_epoch,
            "healthy": m.healthy, "reason": m.reason or None,
            "vip": m.vip or None, "vip_held": m.vip_held,
            "assignment": None if m.assigned_role is None else {
                "role": m.assigned_role, "epoch": m.assigned_epoch,
                "revision": assignment_revision},
        } for m in members],
        "fail_safe": {
            "failed": failed, "blocked": dict(sorted(blocked.items())),
            "guardian": guardian, "kernel_lease": kernel_lease,
            "vip_managed": vip_managed,
        },
    }
    if failsafe is not None:
        doc["failsafe"] = failsafe_section(failsafe)
    return doc


class StatusServer:
    """Serves `document()` as JSON to every client of a unix socket, from one thread."""

    def __init__(self, path: str, document: Callable[[], dict[str, Any]]) -> None:
        from vnfha.agents.roleapi import MAX_SOCKET_PATH

        path = os.path.abspath(path)
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ValueError(f"status socket path {path!r} is longer than "
                             f"{MAX_SOCKET_PATH} bytes (the unix socket limit)")
        self.path = path
        self._document = document
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._inode: tuple[int, int] | None = None
        self.served = 0  # documents sent (tests)

    def start(self) -> None:
        from vnfha.agents.roleapi import _clear_stale_socket

        # /run/vnfha does not exist on a fresh machine (systemd makes it for the unit only)
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        except OSError as e:
            raise OSError(e.errno, f"status.socket {self.path}: cannot create its folder: "
                                   f"{e.strerror}") from e
        _clear_stale_socket(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            os.chmod(self.path, SOCKET_MODE)  # before listen(): nobody else connected yet
            sock.listen(8)
            sock.settimeout(0.5)  # so stop() is noticed
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"status.socket {self.path}: {e.strerror}") from e
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="agent-status", daemon=True)
        self._thread.start()
        log.info("agent status serving", extra={"socket": self.path})

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            with conn:
                try:
                    conn.settimeout(IO_TIMEOUT)
                    data = json.dumps(self._build(), separators=(",", ":")).encode()
                    conn.sendall(data + b"\n")
                    self.served += 1
                except Exception as e:  # a client that went away, or a bug: never fatal
                    log.debug("agent status not sent", extra={"error": str(e)})

    def _build(self) -> dict[str, Any]:
        """The document, built on a helper thread: if the agent is stuck (a lock held
        for ever, the case fail-stop exists for) the operator still gets an answer that
        says so, and this server keeps serving."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["doc"] = self._document()
            except Exception as e:
                box["error"] = f"{type(e).__name__}: {e}"

        t = threading.Thread(target=run, name="agent-status-build", daemon=True)
        t.start()
        t.join(BUILD_TIMEOUT)
        if "doc" in box:
            return box["doc"]
        return {"error": box.get("error") or f"the agent did not build its status within "
                f"{BUILD_TIMEOUT:g} s: an internal loop is stuck (fail-stop should follow)"}

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(self.path)
            if self._inode == (st.st_dev, st.st_ino):  # ours, not a successor's
                os.unlink(self.path)


class StatusUnavailable(Exception):
    """No agent answers on the socket (none runs, or the path is wrong)."""


class StatusRefused(Exception):
    """The socket exists but this user may not connect (permissions)."""


def fetch(path: str, timeout: float = IO_TIMEOUT) -> dict[str, Any]:
    """The client side: connect, read one document, parse it as JSON (nothing else)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except PermissionError:
            raise StatusRefused(
                f"permission denied on {path}: the agent status socket is for root and "
                "the agent's user (mode 0600); run as one of them, e.g. with sudo") from None
        except (FileNotFoundError, ConnectionRefusedError):
            raise StatusUnavailable(
                f"no agent answers at {path}: is the agent running, with status.socket "
                "set to this path in its config (docs/agent.md)?") from None
        except OSError as e:
            raise StatusUnavailable(f"cannot connect to {path}: {e.strerror or e}") from None
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                raise StatusUnavailable(f"the agent at {path} did not answer within "
                                        f"{timeout:g} s") from None
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_DOCUMENT:
                raise StatusUnavailable(f"the answer at {path} is larger than "
                                        f"{MAX_DOCUMENT} bytes: not an agent status socket?")
            chunks.append(chunk)
    finally:
        s.close()
    try:
        doc = json.loads(b"".join(chunks))
    except ValueError:
        raise StatusUnavailable(f"the answer at {path} is not a JSON document: not an "
                                "agent status socket?") from None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        from vnfha.coordinator.names import safe

        raise StatusUnavailable(f"the agent at {path} answered: {safe(doc['error'], 300)}")
    if not isinstance(doc, dict) or "node" not in doc or "lease" not in doc:
        raise StatusUnavailable(f"the answer at {path} is not an agent status document")
    return doc
