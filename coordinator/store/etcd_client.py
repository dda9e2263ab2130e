"""A small etcd v3 client: pyetcd's generated stubs, with our own channels and deadlines.

We use `etcd-sdk-python` (module `pyetcd`, the maintained fork of `etcd3`) for
the etcd API itself: its generated messages and stubs import and work with our
protobuf 7 / grpcio 1.85. Its high-level client is not used, because the store
needs what it does not give:

* a deadline per call (a submit's timeout, a keepalive's share of the TTL);
  it has one timeout for every call;
* endpoints retried at once after etcd comes back; it skips a failed endpoint
  for 300 s, so a restarted single etcd would stay unreachable for minutes;
* a client that can be built while etcd is down and authenticates (again) when
  it needs to; it authenticates once, in its constructor.

Every method raises `EtcdRpcError` (with the gRPC code) on failure.
"""
# EtcdSettings is re-exported: the store and tests build clients from it.

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import grpc
from pyetcd import etcdrpc

from vnfha.coordinator.confparse import parse_address
from vnfha.coordinator.store.etcd_config import EtcdSettings

log = logging.getLogger("vnfha.etcd")
_AUTH_OLD_REVISION = "revision of auth store is old"
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]


class EtcdRpcError(Exception):
    """An etcd call failed; `code` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(f"etcd: {code.name}: {detail}")
        self.code = code
        self.detail = detail


class EtcdClient:
    """Thread-safe; one channel per endpoint, moving to the next one on failure."""

    def __init__(self, settings: EtcdSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        creds = None
        if settings.tls:
            assert settings.ca_file is not None
            creds = grpc.ssl_channel_credentials(
                settings.ca_file.read_bytes(),
                settings.key_file.read_bytes() if settings.key_file else None,
                settings.cert_file.read_bytes() if settings.cert_file else None)
        self._channels: list[grpc.Channel] = []
        for ep in settings.endpoints:
            host, port = parse_address(ep)
            target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            self._channels.append(grpc.secure_channel(target, creds, _CHANNEL_OPTIONS)
                                  if creds is not None
                                  else grpc.insecure_channel(target, _CHANNEL_OPTIONS))
        self._current = 0
        self._token: str | None = None
        #: how often a refused token was replaced by logging in again (tests read it)
        self.relogins = 0

    # -- plumbing ---------------------------------------------------------------------------

    def _channel(self) -> tuple[int, grpc.Channel]:
        with self._lock:
            return self._current, self._channels[self._current]

    def _failed(self, index: int, code: grpc.StatusCode) -> None:
        with self._lock:
            if code == grpc.StatusCode.UNAUTHENTICATED:
                self._token = None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                    and index == self._current:
                self._current = (self._current + 1) % len(self._channels)

    def _metadata(self, channel: grpc.Channel, timeout: float) -> tuple[tuple[str, str], ...]:
        if self._settings.user is None:
            return ()
        with self._lock:
            token = self._token
        if token is None:
            resp = etcdrpc.AuthStub(channel).Authenticate(
                etcdrpc.AuthenticateRequest(name=self._settings.user,
                                            password=self._settings.password or ""),
                timeout=timeout)
            token = resp.token
            with self._lock:
                self._token = token
        return (("token", token),)

    def _unary(self, stub_class: type, method: str, request: object, timeout: float) -> object:
        index, channel = self._channel()
        deadline = time.monotonic() + timeout
        for attempt in (1, 2):
            try:
                md = self._metadata(channel, timeout)
                return getattr(stub_class(channel), method)(
                    request, timeout=max(0.05, deadline - time.monotonic()), metadata=md)
            except grpc.RpcError as e:
                code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
                self._failed(index, code)
                detail = (e.details() if hasattr(e, "details") else str(e)) or ""
                if attempt == 1 and self._retry_after_login(code, detail, deadline):
                    continue
                raise EtcdRpcError(code, detail) from None
        raise AssertionError("unreachable")

    def _retry_after_login(self, code: grpc.StatusCode, detail: str, deadline: float) -> bool:
        """True if the call was refused only because of our token, so logging in again
        and repeating it is safe: etcd checks the token before it applies anything.

        etcd forgets a simple token after --auth-token-ttl (default 300 s) without use
        and on every restart; and answers "revision of auth store is old" when users or
        roles changed between checking the token and applying the request."""
        if self._settings.user is None or time.monotonic() >= deadline:
            return False
        if code == grpc.StatusCode.UNAUTHENTICATED or _AUTH_OLD_REVISION in detail:
            with self._lock:
                self._token = None
                self.relogins += 1
            log.info("etcd auth token refused; logging in again",
                     extra={"user": self._settings.user, "reason": detail})
            return True
        return False

    # -- the calls the store makes ------------------------------------------------------------

    def range(self, key: bytes, range_end: bytes | None, timeout: float,
              count_only: bool = False) -> etcdrpc.RangeResponse:
        req = etcdrpc.RangeRequest(key=key, range_end=range_end or b"", count_only=count_only)
        return self._unary(etcdrpc.KVStub, "Range", req, timeout)  # type: ignore[return-value]

    def txn(self, compare: list[etcdrpc.Compare], success: list[etcdrpc.RequestOp],
            failure: list[etcdrpc.RequestOp], timeout: float) -> etcdrpc.TxnResponse:
        req = etcdrpc.TxnRequest(compare=compare, success=success, failure=failure)
        return self._unary(etcdrpc.KVStub, "Txn", req, timeout)  # type: ignore[return-value]

    def grant(self, ttl: int, timeout: float) -> etcdrpc.LeaseGrantResponse:
        req = etcdrpc.LeaseGrantRequest(TTL=ttl)
        return self._unary(etcdrpc.LeaseStub, "LeaseGrant", req,  # type: ignore[return-value]
                           timeout)

    def revoke(self, lease: int, timeout: float) -> None:
        self._unary(etcdrpc.LeaseStub, "LeaseRevoke", etcdrpc.LeaseRevokeRequest(ID=lease),
                    timeout)

    def keepalive(self, lease: int, timeout: float) -> int:
        """Renew `lease` once; returns the TTL etcd granted from now (0: lease gone)."""
        index, channel = self._channel()
        deadline = time.monotonic() + timeout
        for attempt in (1, 2):
            try:
                md = self._metadata(channel, timeout)
                stream = etcdrpc.LeaseStub(channel).LeaseKeepAlive(
                    iter([etcdrpc.LeaseKeepAliveRequest(ID=lease)]),
                    timeout=max(0.05, deadline - time.monotonic()), metadata=md)
                for resp in stream:
                    return int(resp.TTL)
                raise EtcdRpcError(grpc.StatusCode.UNAVAILABLE, "keepalive stream closed")
            except grpc.RpcError as e:
                code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
                self._failed(index, code)
                detail = (e.details() if hasattr(e, "details") else "") or ""
                if attempt == 1 and self._retry_after_login(code, detail, deadline):
                    continue
                raise EtcdRpcError(code, detail) from None
        raise AssertionError("unreachable")

    def watch(self, key: bytes, range_end: bytes, start_revision: int,
              timeout: float) -> WatchStream:
        """A watch on [key, range_end) from `start_revision`; iterate for responses."""
        index, channel = self._channel()
        try:
            md = self._metadata(channel, timeout)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
            self._failed(index, code)
            detail = (e.details() if hasattr(e, "details") else "") or ""
            raise EtcdRpcError(code, f"authenticate for watch: {detail}") from None
        create = etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
            key=key, range_end=range_end, start_revision=start_revision))
        return WatchStream(etcdrpc.WatchStub(channel), create, md,
                           on_error=lambda code: self._failed(index, code))

    def close(self) -> None:
        for ch in self._channels:
            ch.close()


class WatchStream:
    """One etcd watch stream; `cancel` ends iteration from another thread."""

    def __init__(self, stub: etcdrpc.WatchStub, create: etcdrpc.WatchRequest,
                 metadata: tuple[tuple[str, str], ...],
                 on_error: object) -> None:
        self._done = threading.Event()
        self._on_error = on_error

        def requests() -> Iterator[etcdrpc.WatchRequest]:
            yield create
            self._done.wait()  # keep the request side open until cancelled

        self._call = stub.Watch(requests(), metadata=metadata)

    def __iter__(self) -> Iterator[etcdrpc.WatchResponse]:
        try:
            yield from self._call
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
            if code != grpc.StatusCode.CANCELLED:
                self._on_error(code)  # type: ignore[operator]
            raise EtcdRpcError(code, (e.details() if hasattr(e, "details") else "") or ""
                               ) from None
        finally:
            self._done.set()

    def cancel(self) -> None:
        self._done.set()
        self._call.cancel()


def put_op(key: bytes, value: bytes, lease: int = 0) -> etcdrpc.RequestOp:
    return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=value, lease=lease))


def delete_op(key: bytes) -> etcdrpc.RequestOp:
    return etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=key))


def range_op(key: bytes) -> etcdrpc.RequestOp:
    return etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key))


def mod_revision_is(key: bytes, revision: int) -> etcdrpc.Compare:
    return etcdrpc.Compare(key=key, target=etcdrpc.Compare.MOD,
                           result=etcdrpc.Compare.EQUAL, mod_revision=revision)


def create_revision_is(key: bytes, revision: int) -> etcdrpc.Compare:
    """revision 0 means "the key does not exist"."""
    return etcdrpc.Compare(key=key, target=etcdrpc.Compare.CREATE,
                           result=etcdrpc.Compare.EQUAL, create_revision=revision)
