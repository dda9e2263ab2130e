"""The role API: VNFCs on this VM ask the agent which role they hold (RoleService).

gRPC (grpc.aio, one event-loop thread) on a unix socket: only local processes
can reach it, and file permissions decide which ones. The socket is created
with mode 0660 (owner and group may connect, others may not); put the VNFC's
user in the agent's group, or make the socket's directory setgid to a shared
group. A socket file left behind by a dead agent is replaced; one that a live
process still serves is not (two agents on one socket would be a mess).

The agent tells the server about role changes with `notify()`; watches push
at once. Besides that a watch resends the current role every
`resend_interval` seconds, and more often while active (at half the lease
time remaining) so a client's copy of the lease deadline never goes stale
while the lease is being renewed. See docs/role-api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vnfha.v1 import role_pb2, role_pb2_grpc, types_pb2

__all__ = ["SOCKET_MODE", "MemberRoleView", "RoleApiServer",
           "RoleProvider", "resolve", "to_proto"]

log = logging.getLogger("vnfha.agent.roleapi")

#: Owner and group may connect; nobody else.
SOCKET_MODE = 0o660
#: sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
#: While active, never resend more often than this (the lease may be about to end).
MIN_REFRESH = 0.05


@dataclass(frozen=True)
class MemberRoleView:
    """What the agent knows about one hosted member, as the role API shows it."""

    group: str
    member: str
    active: bool
    epoch: int = 0  # the fencing token while active; ignored (sent as 0) when standby
    vip: str = ""
    lease_deadline_monotonic: float | None = None  # time.monotonic() when the lease ends
    healthy: bool = True
    reason: str = ""


class RoleProvider(Protocol):
    def roles(self) -> Sequence[MemberRoleView]:
        """Every member hosted here, now. Called from the server's worker thread (so it
        may take the agent's locks without stalling the event loop): thread-safe, quick."""
        ...


class RoleApiRefused(Exception):
    """A request the API cannot answer, with the gRPC status to say so."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def resolve(views: Sequence[MemberRoleView], group: str, member: str) -> MemberRoleView:
    """Find the member a request means; an empty member is fine if the group is hosted
    once here (most VMs host one member per group)."""
    if not group:
        raise RoleApiRefused(grpc.StatusCode.INVALID_ARGUMENT, "group is required")
    in_group = [v for v in views if v.group == group]
    hosted = ", ".join(sorted(f"{v.group}/{v.member}" for v in views)) or "none"
    if member:
        for v in in_group:
            if v.member == member:
                return v
        raise RoleApiRefused(grpc.StatusCode.NOT_FOUND,
                             f"member {group}/{member} is not hosted by this agent "
                             f"(hosted here: {hosted})")
    if not in_group:
        raise RoleApiRefused(grpc.StatusCode.NOT_FOUND,
                             f"group {group!r} is not hosted by this agent (hosted here: {hosted})")
    if len(in_group) > 1:
        names = ", ".join(sorted(v.member for v in in_group))
        raise RoleApiRefused(grpc.StatusCode.INVALID_ARGUMENT,
                             f"group {group!r} has {len(in_group)} members on this agent "
                             f"({names}): name the member")
    return in_group[0]


def to_proto(view: MemberRoleView, now: float, wall_now: float) -> role_pb2.MemberRole:
    """`now` is time.monotonic(), `wall_now` time.time(), both taken at once."""
    msg = role_pb2.MemberRole(
        group=view.group, member=view.member,
        role=types_pb2.ROLE_ACTIVE if view.active else types_pb2.ROLE_STANDBY,
        epoch=view.epoch if view.active else 0, vip=view.vip, healthy=view.healthy,
        reason=view.reason)
    if view.lease_deadline_monotonic is not None:
        # Rounded down: a client must never believe in a longer lease than there is.
        remaining_ms = int(max(0.0, view.lease_deadline_monotonic - now) * 1000)
        msg.lease_remaining_ms = remaining_ms
        if remaining_ms > 0:
            deadline = Timestamp()
            deadline.FromNanoseconds(int((wall_now + remaining_ms / 1000) * 1e9))
            msg.lease_deadline.CopyFrom(deadline)
    return msg


class _Servicer(role_pb2_grpc.RoleServiceServicer):
    def __init__(self, server: RoleApiServer) -> None:
        self._server = server

    async def GetRole(self, request: role_pb2.GetRoleRequest,
                      context: grpc.aio.ServicerContext) -> role_pb2.GetRoleResponse:
        try:
            view = resolve(await self._server.views(), request.group, request.member)
        except RoleApiRefused as r:
            await context.abort(r.code, r.message)
        return role_pb2.GetRoleResponse(role=self._server.render(view))

    async def WatchRole(self, request: role_pb2.WatchRoleRequest,
                        context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[role_pb2.WatchRoleResponse]:
        while True:
            # Taken before reading the state: a change after the read wakes us.
            changed = self._server.changed_event()
            try:
                view = resolve(await self._server.views(), request.group, request.member)
            except RoleApiRefused as r:
                await context.abort(r.code, r.message)
            yield role_pb2.WatchRoleResponse(role=self._server.render(view))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), self._server.next_resend(view))


class RoleApiServer:
    """Serves RoleService on `unix://<socket_path>` from its own thread and event loop."""

    def __init__(self, socket_path: str, provider: RoleProvider, resend_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        path = os.path.abspath(socket_path)
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ValueError(f"role API socket path {path!r} is longer than "
                             f"{MAX_SOCKET_PATH} bytes (the unix socket limit)")
        self.socket_path = path
        self.provider = provider
        self.resend_interval = resend_interval
        self._clock = clock
        self._wall = wall_clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: grpc.aio.Server | None = None
        self._changed: asyncio.Event | None = None
        self._inode: tuple[int, int] | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def target(self) -> str:
        """The gRPC target a client dials."""
        return f"unix://{self.socket_path}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        _clear_stale_socket(self.socket_path)
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._executor = ThreadPoolExecutor(max_workers=2,
                                            thread_name_prefix="roleapi-provider")
        self._thread = threading.Thread(target=loop.run_forever, name="roleapi-loop",
                                        daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        except BaseException:
            self.stop()
            raise
        log.info("role API serving", extra={"socket": self.socket_path})

    async def _serve(self) -> None:
        self._changed = asyncio.Event()
        server = grpc.aio.server()
        self._server = server
        role_pb2_grpc.add_RoleServiceServicer_to_server(_Servicer(self), server)
        if server.add_insecure_port(self.target) == 0:
            raise OSError(f"cannot listen on {self.target}")
        await server.start()
        os.chmod(self.socket_path, SOCKET_MODE)
        st = os.stat(self.socket_path)
        self._inode = (st.st_dev, st.st_ino)

    def stop(self) -> None:
        """Ends every watch, stops the loop thread and removes the socket file."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        server = self._server
        if server is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(server.stop(grace=0.2), loop).result(3)
            except Exception:  # still tear the loop down below
                log.debug("role API server stop did not complete cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not loop.is_running():
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        self._server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._remove_socket()

    def _remove_socket(self) -> None:
        try:
            st = os.lstat(self.socket_path)
        except FileNotFoundError:
            return
        if self._inode == (st.st_dev, st.st_ino):  # ours, not a successor's
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)

    # -- change notification ---------------------------------------------------------------

    def notify(self) -> None:
        """A role changed: wake every watch now. Thread-safe, never blocks."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop closing under us: nobody to tell
            loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        old, self._changed = self._changed, asyncio.Event()
        if old is not None:
            old.set()

    # -- used by the servicer (on the loop) ------------------------------------------------

    async def views(self) -> Sequence[MemberRoleView]:
        """The provider's view, read off the loop thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.provider.roles)

    def changed_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def render(self, view: MemberRoleView) -> role_pb2.MemberRole:
        return to_proto(view, self._clock(), self._wall())

    def next_resend(self, view: MemberRoleView) -> float:
        """Keepalive resend; while active, soon enough that the client's lease copy is
        refreshed before half of it is used up."""
        wait = self.resend_interval
        if view.active and view.lease_deadline_monotonic is not None:
            remaining = view.lease_deadline_monotonic - self._clock()
            if remaining > 0:
                wait = min(wait, max(remaining / 2, MIN_REFRESH))
        return wait


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file nobody serves any more; refuse to touch anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        log.info("replaced a stale role API socket", extra={"socket": path})
        return
    finally:
        probe.close()
    raise OSError(f"{path} is in use by another process (another agent running?)")
