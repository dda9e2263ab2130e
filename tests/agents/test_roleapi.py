"""Role API over a real unix socket: the server with a fake provider (its input), the SDK."""

from __future__ import annotations

import os
import queue
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from vnfha.agents.roleapi import MemberRoleView, RoleApiServer
from vnfha.agents.sdk import NotActive, RoleApiError, RoleClient, RoleState, RoleWatch
from vnfha.v1 import role_pb2, role_pb2_grpc, types_pb2


class FakeProvider:
    """Views set by the test; a `lease_for` > 0 renews the lease on every read (like a
    healthy agent), 0 leaves the deadline where it is."""

    def __init__(self, *views: MemberRoleView, lease_for: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._views = list(views)
        self.lease_for = lease_for

    def roles(self) -> list[MemberRoleView]:
        with self._lock:
            views = list(self._views)
        if self.lease_for:
            deadline = time.monotonic() + self.lease_for
            views = [replace(v, lease_deadline_monotonic=deadline) for v in views]
        return views

    def set(self, view: MemberRoleView) -> None:
        with self._lock:
            self._views = [view if (v.group, v.member) == (view.group, view.member) else v
                           for v in self._views]


def active(group: str = "web", member: str = "web-1", epoch: int = 7,
           lease: float | None = 30.0, **kw: object) -> MemberRoleView:
    deadline = None if lease is None else time.monotonic() + lease
    return MemberRoleView(group=group, member=member, active=True, epoch=epoch, vip="10.0.0.5",
                          lease_deadline_monotonic=deadline, healthy=True,
                          reason="assignments at revision 3", **kw)  # type: ignore[arg-type]


def standby(group: str = "web", member: str = "web-1", reason: str = "demoted"
            ) -> MemberRoleView:
    return MemberRoleView(group=group, member=member, active=False, epoch=8,
                          lease_deadline_monotonic=time.monotonic() + 30, healthy=False,
                          reason=reason)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # pytest's tmp_path can exceed the 107-byte unix socket path limit.
    d = Path(tempfile.mkdtemp(prefix="vnfha-role-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def serve(sock_dir: Path) -> Iterator:
    servers: list[RoleApiServer] = []
    clients: list[RoleClient] = []

    def make(provider: FakeProvider, resend_interval: float = 5.0, name: str = "role.sock"
             ) -> tuple[RoleApiServer, RoleClient]:
        srv = RoleApiServer(str(sock_dir / name), provider, resend_interval=resend_interval)
        srv.start()
        servers.append(srv)
        client = RoleClient(srv.socket_path, timeout=2.0, max_backoff=0.2)
        clients.append(client)
        return srv, client

    yield make
    for c in clients:
        c.close()
    for s in servers:
        s.stop()
    left = [t.name for t in threading.enumerate()
            if t.name in ("roleapi-loop", "vnfha-role-watch")
            or t.name.startswith("roleapi-provider")]
    assert not left, f"threads left behind: {left}"


def next_within(watch: RoleWatch, timeout: float) -> RoleState:
    """Next watch item, failing the test if it does not come in time."""
    out: queue.Queue[RoleState | BaseException] = queue.Queue()

    def pull() -> None:
        try:
            out.put(next(watch))
        except BaseException as e:
            out.put(e)

    t = threading.Thread(target=pull, daemon=True)
    t.start()
    try:
        item = out.get(timeout=timeout)
    except queue.Empty:
        watch.cancel()
        t.join(2)
        raise AssertionError(f"no watch event within {timeout}s") from None
    t.join(2)
    if isinstance(item, BaseException):
        raise item
    return item


# -- GetRole -----------------------------------------------------------------------------------


def test_get_active_and_standby(serve) -> None:
    provider = FakeProvider(active(lease=10.0), standby("db", "db-2", reason="released"))
    _, client = serve(provider)
    t0 = time.time()
    web = client.get("web")  # one member of web here: member may be omitted
    assert (web.group, web.member, web.active, web.epoch, web.vip) == (
        "web", "web-1", True, 7, "10.0.0.5")
    assert 9.0 < web.lease_remaining <= 10.0
    assert web.lease_deadline is not None
    assert t0 + 9 < web.lease_deadline.timestamp() < t0 + 11
    assert web.healthy and web.reason == "assignments at revision 3"
    assert web.lease_valid()
    db = client.get("db", "db-2")
    assert (db.active, db.epoch, db.healthy, db.reason) == (False, 0, False, "released")


def test_no_lease_reads_as_zero(serve) -> None:
    _, client = serve(FakeProvider(active(lease=None)))
    state = client.get("web", "web-1")
    assert state.lease_remaining == 0 and state.lease_deadline is None
    assert not state.lease_valid()


def test_unknown_and_ambiguous_members(serve) -> None:
    provider = FakeProvider(active(), standby("db", "db-1"), standby("db", "db-2"))
    _, client = serve(provider)
    with pytest.raises(RoleApiError) as err:
        client.get("nosuch")
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert "group 'nosuch' is not hosted by this agent" in err.value.details
    assert "web/web-1" in err.value.details  # says what is hosted
    with pytest.raises(RoleApiError) as err:
        client.get("web", "web-9")
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert "web/web-9 is not hosted" in err.value.details
    with pytest.raises(RoleApiError) as err:
        client.get("db")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "2 members on this agent (db-1, db-2): name the member" in err.value.details
    with pytest.raises(RoleApiError) as err:
        client.get("")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert client.get("db", "db-2").member == "db-2"


def test_raw_grpc_status_on_the_wire(serve) -> None:
    srv, _ = serve(FakeProvider(active()))
    with grpc.insecure_channel(srv.target) as channel:
        stub = role_pb2_grpc.RoleServiceStub(channel)
        resp = stub.GetRole(role_pb2.GetRoleRequest(group="web"), timeout=2)
        assert resp.role.role == types_pb2.ROLE_ACTIVE and resp.role.epoch == 7
        with pytest.raises(grpc.RpcError) as err:
            list(stub.WatchRole(role_pb2.WatchRoleRequest(group="x"), timeout=2))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


# -- the socket file ---------------------------------------------------------------------------


def test_socket_mode_0660_and_removed_on_stop(serve, sock_dir: Path) -> None:
    srv, client = serve(FakeProvider(active()))
    st = os.stat(srv.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert client.get("web").active
    srv.stop()
    assert not os.path.exists(srv.socket_path)


def test_stale_socket_file_is_replaced(serve, sock_dir: Path) -> None:
    path = sock_dir / "role.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # left behind by a "crashed agent": bound, nobody listening
    dead.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    _, client = serve(FakeProvider(active()))
    assert client.get("web").epoch == 7
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660


def test_live_socket_and_other_files_are_not_replaced(serve, sock_dir: Path) -> None:
    srv, client = serve(FakeProvider(active()))
    with pytest.raises(OSError, match="in use by another process"):
        RoleApiServer(srv.socket_path, FakeProvider()).start()
    assert client.get("web").active  # the first server still serves
    plain = sock_dir / "not-a-socket"
    plain.write_text("keep me")
    with pytest.raises(OSError, match="is not a socket"):
        RoleApiServer(str(plain), FakeProvider()).start()
    assert plain.read_text() == "keep me"


def test_socket_path_too_long() -> None:
    with pytest.raises(ValueError, match="longer than 107 bytes"):
        RoleApiServer("/tmp/" + "x" * 120, FakeProvider())


# -- WatchRole ---------------------------------------------------------------------------------


def test_watch_initial_then_change_right_after_notify(serve) -> None:
    provider = FakeProvider(active())
    srv, client = serve(provider, resend_interval=5.0)
    watch = client.watch("web")
    try:
        first = next_within(watch, 3)
        assert first.active and first.epoch == 7
        provider.set(standby())
        t0 = time.monotonic()
        srv.notify()
        change = next_within(watch, 1.0)
        assert time.monotonic() - t0 < 0.5  # pushed, not the 5 s resend
        assert (change.active, change.epoch, change.reason) == (False, 0, "demoted")
    finally:
        watch.cancel()
    with pytest.raises(StopIteration):
        next(watch)


def test_watch_resends_periodically(serve) -> None:
    _, client = serve(FakeProvider(standby()), resend_interval=0.1)
    with client.watch("web", "web-1") as watch:
        states = [next_within(watch, 2) for _ in range(3)]
        assert all(not s.active for s in states)
    with pytest.raises(StopIteration):
        next(watch)


def test_watch_unknown_member_raises(serve) -> None:
    _, client = serve(FakeProvider(active()))
    with pytest.raises(RoleApiError) as err:
        next_within(client.watch("web", "nope"), 3)
    assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_watch_reconnects_when_the_agent_restarts(serve, sock_dir: Path) -> None:
    provider = FakeProvider(active(epoch=7))
    srv, client = serve(provider)
    watch = client.watch("web")
    try:
        assert next_within(watch, 3).epoch == 7
        srv.stop()
        provider.set(active(epoch=9))
        srv2 = RoleApiServer(srv.socket_path, provider, resend_interval=5.0)
        srv2.start()
        try:
            assert next_within(watch, 5).epoch == 9
        finally:
            watch.cancel()
            srv2.stop()
    finally:
        watch.cancel()


def test_notify_outside_serving_is_harmless(sock_dir: Path) -> None:
    srv = RoleApiServer(str(sock_dir / "r.sock"), FakeProvider(active()))
    srv.notify()
    srv.start()
    srv.notify()
    srv.stop()
    srv.notify()
    srv.stop()


# -- active_context ----------------------------------------------------------------------------


def test_active_context_refuses_standby(serve) -> None:
    _, client = serve(FakeProvider(standby(reason="promoted web-2")))
    with pytest.raises(NotActive, match="web/web-1 is not active: it is standby"):
        with client.active_context("web"):
            raise AssertionError("must not run")


def test_active_context_refuses_an_expired_lease(serve) -> None:
    _, client = serve(FakeProvider(active(lease=-1.0)))
    with pytest.raises(NotActive, match="lease has run out"):
        with client.active_context("web"):
            raise AssertionError("must not run")


def test_active_context_invalid_once_provider_flips_to_standby(serve) -> None:
    provider = FakeProvider(active(epoch=7), lease_for=0.6)
    srv, client = serve(provider, resend_interval=5.0)
    with client.active_context("web") as ctx:
        assert ctx.epoch == 7 and ctx.vip == "10.0.0.5"
        assert ctx.valid() and ctx.reason == ""
        time.sleep(0.8)  # longer than one lease: refreshed while active, still valid
        assert ctx.valid()
        provider.set(standby(reason="switchover"))
        t0 = time.monotonic()
        srv.notify()
        assert ctx.wait_lost(timeout=2.0)
        assert time.monotonic() - t0 < 0.5
        assert not ctx.valid()
        assert ctx.reason == "role lost: now standby (switchover)"
        provider.set(active(epoch=7))  # never valid again, even if it comes back
        srv.notify()
        time.sleep(0.1)
        assert not ctx.valid()


def test_active_context_invalid_on_a_new_epoch(serve) -> None:
    provider = FakeProvider(active(epoch=7))
    srv, client = serve(provider)
    with client.active_context("web", "web-1") as ctx:
        provider.set(active(epoch=9))
        srv.notify()
        assert ctx.wait_lost(timeout=2.0)
        assert ctx.reason.startswith("role lost: now active at epoch 9")


def test_active_context_invalid_when_lease_deadline_passes(serve) -> None:
    # The agent stops renewing (deadline fixed 0.4 s out) and sends nothing more.
    view = active(epoch=7, lease=0.5)
    deadline = view.lease_deadline_monotonic
    assert deadline is not None
    _, client = serve(FakeProvider(view), resend_interval=5.0)
    with client.active_context("web") as ctx:
        assert ctx.valid()
        assert ctx.wait_lost(timeout=2.0)
        lost_at = time.monotonic()
        # Ends at the agent's deadline: not (much) before, and promptly after.
        assert deadline - 0.05 <= lost_at < deadline + 0.3
        assert ctx.reason == "lease deadline passed"


def test_active_context_survives_the_agent_going_away_until_the_deadline(serve) -> None:
    provider = FakeProvider(active(epoch=7, lease=0.5))
    srv, client = serve(provider)
    with client.active_context("web") as ctx:
        srv.stop()  # no more messages at all: only the deadline can end it
        assert ctx.valid()
        assert ctx.wait_lost(timeout=2.0)
        assert ctx.reason == "lease deadline passed"
