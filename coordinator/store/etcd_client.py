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

import threading
from collections.abc import Iterator

import grpc
from pyetcd import etcdrpc

from vnfha.coordinator.confparse import parse_address
from vnfha.coordinator.store.etcd_config import EtcdSettings

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
        try:
            md = self._metadata(channel, timeout)
            return getattr(stub_class(channel), method)(request, timeout=timeout, metadata=md)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
            self._failed(index, code)
            detail = e.details() if hasattr(e, "details") else str(e)
            raise EtcdRpcError(code, detail or "") from None

    # -- the calls the store makes ------------------------------------------------------------

    def range(self, key: bytes, range_end: bytes | None, timeout: float
              ) -> etcdrpc.RangeResponse:
        req = etcdrpc.RangeRequest(key=key, range_end=range_end or b"")
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
        try:
            md = self._metadata(channel, timeout)
            stream = etcdrpc.LeaseStub(channel).LeaseKeepAlive(
                iter([etcdrpc.LeaseKeepAliveRequest(ID=lease)]), timeout=timeout, metadata=md)
            for resp in stream:
                return int(resp.TTL)
            raise EtcdRpcError(grpc.StatusCode.UNAVAILABLE, "keepalive stream closed")
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
            self._failed(index, code)
            raise EtcdRpcError(code, (e.details() if hasattr(e, "details") else "") or ""
                               ) from None

    def watch(self, key: bytes, range_end: bytes, start_revision: int,
              timeout: float) -> WatchStream:
        """A watch on [key, range_end) from `start_revision`; iterate for responses."""
        index, channel = self._channel()
        try:
            md = self._metadata(channel, timeout)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
            self._failed(index, code)
            raise EtcdRpcError(code, "authenticate for watch") from None
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
