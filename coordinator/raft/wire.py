"""Raft connections and listener that never unpickle and never buffer without bound.

pysyncobj's ``TcpConnection`` pickles every message, reads a whole socket
dry in one go and keeps any claimed frame length waiting in an unbounded
buffer; its ``TcpServer`` stops listening for good after one failed
``accept``. These replacements keep pysyncobj's interface (``internals``
installs them in ``pysyncobj.transport``) and change what it does:

* **order of checks per frame**: length prefix against the limit, then
  (with a secret) AES-GCM authentication (crypto.py), then the plain-data
  codec (codec.py), then the handshake key pysyncobj puts in every message.
  A frame failing any step closes the connection before later steps run.
* **limits**: until a connection has authenticated a frame it may only
  send frames of :data:`PREAUTH_MAX_FRAME` bytes and its read buffer never
  holds more than one such frame; afterwards frames up to
  :data:`MAX_FRAME`. A too-long frame closes the connection at its
  header. The write buffer is capped too (a peer that stops reading is
  dropped, not queued for forever).
* **fair reading**: one poll event reads at most :data:`READ_BUDGET` bytes,
  so a flooding connection cannot keep the tick thread (elections,
  heartbeats, commits) from running.
* **quiet logs**: a refused connection is logged once per reason per
  :data:`LOG_INTERVAL` with a count; never a byte of the payload.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.tcp_connection import CONNECTION_STATE, set_keepalive

from . import codec
from .crypto import AuthError, Opener, Sealer, WireKeys

logger = logging.getLogger(__name__)

#: largest frame before the connection authenticated one (handshake frames are < 100 bytes)
PREAUTH_MAX_FRAME = 4096
#: largest frame afterwards: an append_entries batch is <= 64 KiB of entries plus one
#: command (<= max_command_bytes, 1 MiB by default and at most MAX_COMMAND_BYTES);
#: snapshot and large-entry chunks are 64 KiB. Measured maximum: see docs/design.md.
MAX_FRAME = 4 << 20
#: settings.max_command_bytes may not exceed this (a command must fit a frame)
MAX_COMMAND_BYTES = 3 << 20
#: a peer that lets this much of our output pile up is disconnected
MAX_WRITE_BUFFER = 64 << 20
#: bytes read from one connection per poll event
READ_BUDGET = 256 << 10
LOG_INTERVAL = 10.0

_LEN = struct.Struct(">I")
_AGAIN = (errno.EAGAIN, errno.EWOULDBLOCK)


class RateLimitedLog:
    """One warning per reason per interval, with how many were suppressed."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def reset(self) -> None:
        """Forget what was logged (tests)."""
        with self._lock:
            self._last.clear()

    def warn(self, reason: str, peer: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(reason, (-1e18, 0))
            if now - last < self._interval:
                self._last[reason] = (last, suppressed + 1)
                return
            self._last[reason] = (now, 0)
        logger.warning("raft connection refused", extra={
            "reason": reason, "peer": peer, "suppressed_since_last": suppressed})


REFUSED = RateLimitedLog()


def _peer_name(sock: socket.socket | None) -> str | None:
    try:
        host, port = sock.getpeername()[:2] if sock is not None else (None, None)
    except OSError:
        return None
    return None if host is None else f"{host}:{port}"


class WireConnection:
    """Drop-in for ``pysyncobj.tcp_connection.TcpConnection`` (same constructor and API)."""

    def __init__(self, poller: Any, onMessageReceived: Callable[[Any], None] | None = None,
                 onConnected: Callable[[], None] | None = None,
                 onDisconnected: Callable[[], None] | None = None,
                 socket: socket.socket | None = None, timeout: float = 10.0,
                 sendBufferSize: int = 2 ** 13, recvBufferSize: int = 2 ** 13,
                 keepalive: tuple[int, int, int] | None = None) -> None:
        # pysyncobj's handshake state, set and read by its TCPTransport
        self.sendRandKey: Any = None
        self.recvRandKey: Any = None
        self.encryptor: WireKeys | None = None
        self._poller = poller
        self._on_message = onMessageReceived
        self._on_connected = onConnected
        self._on_disconnected = onDisconnected
        self._timeout = timeout
        self._sndbuf = sendBufferSize
        self._rcvbuf = recvBufferSize
        self._keepalive = keepalive
        self._sock: socket.socket | None = None
        self._fileno: int | None = None
        self._state = CONNECTION_STATE.DISCONNECTED
        self._peer: str | None = None
        # which secret this (reused, outgoing) connection seals its first frame with;
        # moves on to the next one after an attempt that never authenticated
        self._key_index = 0
        self._last_attempt_ok = True
        self._reset()
        if socket is not None:
            self._sock = socket
            self._fileno = socket.fileno()
            self._state = CONNECTION_STATE.CONNECTED
            self._peer = _peer_name(socket)
            self._set_keepalive()
            self._poller.subscribe(self._fileno, self._on_event,
                                   POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE
                                   | POLL_EVENT_TYPE.ERROR)

    def _reset(self) -> None:
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._last_read = time.monotonic()
        self._last_send = self._last_read
        self._sealer: Sealer | None = None
        self._opener: Opener | None = None
        self._trusted = False

    # ------------------------------------------------------ pysyncobj API
    def setOnConnectedCallback(self, cb: Callable[[], None] | None) -> None:
        self._on_connected = cb

    def setOnMessageReceivedCallback(self, cb: Callable[[Any], None] | None) -> None:
        self._on_message = cb

    def setOnDisconnectedCallback(self, cb: Callable[[], None] | None) -> None:
        self._on_disconnected = cb

    @property
    def state(self) -> int:
        return self._state

    @property
    def peer(self) -> str | None:
        """``host:port`` of the other end, for logs."""
        return self._peer

    @property
    def trusted(self) -> bool:
        """True once a frame authenticated (only then are large frames accepted)."""
        return self._trusted

    @property
    def last_send(self) -> float:
        """``time.monotonic()`` when a frame was last queued (or the connection began)."""
        return self._last_send

    def fileno(self) -> int | None:
        return self._fileno

    def getSendBufferSize(self) -> int:
        return len(self._wbuf)

    def connect(self, host: str, port: int) -> bool:
        if host is None:
            return False
        self._state = CONNECTION_STATE.DISCONNECTED
        self._fileno = None
        self._reset()
        self.sendRandKey = self.recvRandKey = None
        keys = self.encryptor
        if keys is not None and len(keys.masters) > 1 and not self._last_attempt_ok:
            self._key_index = (self._key_index + 1) % len(keys.masters)
        self._last_attempt_ok = False
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock = sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._sndbuf)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._set_keepalive()
            sock.setblocking(False)
            sock.connect((host, port))
        except OSError as exc:
            if exc.errno not in (errno.EINPROGRESS, *_AGAIN):
                sock.close()
                self._sock = None
                return False
        self._peer = f"{host}:{port}"
        self._fileno = sock.fileno()
        self._state = CONNECTION_STATE.CONNECTING
        self._poller.subscribe(self._fileno, self._on_event,
                               POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE
                               | POLL_EVENT_TYPE.ERROR)
        return True

    def send(self, message: Any) -> None:
        if self._state == CONNECTION_STATE.DISCONNECTED:
            return
        if self.sendRandKey:
            message = (self.sendRandKey, message)
        try:
            body = codec.encode(message)
        except codec.CodecError as exc:
            logger.error("raft message not sent: the wire codec refused it",
                         extra={"reason": str(exc), "peer": self._peer})
            return
        if self.encryptor is not None:
            if self._sealer is None:
                # answer a peer under the secret it used; else our choice (current first)
                opener = self._opener
                index = opener.index if opener is not None and opener.index is not None \
                    else self._key_index
                self._sealer = self.encryptor.sealer(index)
            body = self._sealer.seal(body)
        if len(body) > MAX_FRAME:
            logger.error("raft message not sent: larger than a frame",
                         extra={"bytes": len(body), "limit": MAX_FRAME, "peer": self._peer})
            self.disconnect()  # the peer now misses a message; make it resync
            return
        self._wbuf += _LEN.pack(len(body))
        self._wbuf += body
        self._last_send = time.monotonic()
        if len(self._wbuf) > MAX_WRITE_BUFFER:
            REFUSED.warn("peer does not read its messages", self._peer)
            self.disconnect()
            return
        self._flush()
        if self._wbuf and self._fileno is not None:
            # the socket is full: ask the poller to tell us when it drains
            self._poller.subscribe(self._fileno, self._on_event, POLL_EVENT_TYPE.READ
                                   | POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR)

    def disconnect(self) -> None:
        notify = self._on_disconnected is not None \
            and self._state != CONNECTION_STATE.DISCONNECTED
        self.sendRandKey = self.recvRandKey = None
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._reset()
        self._state = CONNECTION_STATE.DISCONNECTED
        if notify:
            assert self._on_disconnected is not None
            self._on_disconnected()

    # ----------------------------------------------------------- internals
    def _set_keepalive(self) -> None:
        if self._sock is not None and self._keepalive is not None:
            set_keepalive(self._sock, *self._keepalive)

    def _refuse(self, reason: str) -> None:
        REFUSED.warn(reason, self._peer)
        self.disconnect()

    def _on_event(self, fd: int, event: int) -> None:
        if fd != self._fileno:
            self._poller.unsubscribe(fd)
            return
        if event & POLL_EVENT_TYPE.ERROR or self._timed_out():
            self.disconnect()
            return
        sock = self._sock
        assert sock is not None
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.disconnect()
            return
        if self._state == CONNECTION_STATE.CONNECTING:
            if self._on_connected is not None:
                self._on_connected()
            if self._state == CONNECTION_STATE.DISCONNECTED:
                return
            self._state = CONNECTION_STATE.CONNECTED
            self._last_read = time.monotonic()
            return
        if event & POLL_EVENT_TYPE.WRITE:
            self._flush()
            if self._state == CONNECTION_STATE.DISCONNECTED:
                return
            mask = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
            if self._wbuf:
                mask |= POLL_EVENT_TYPE.WRITE
            self._poller.subscribe(fd, self._on_event, mask)
        if event & POLL_EVENT_TYPE.READ:
            self._read()

    def _timed_out(self) -> bool:
        return time.monotonic() - self._last_read > self._timeout

    def _flush(self) -> None:
        if self._timed_out():
            self.disconnect()
            return
        while self._wbuf and self._sock is not None:
            try:
                sent = self._sock.send(self._wbuf)
            except OSError as exc:
                if exc.errno not in _AGAIN:
                    self.disconnect()
                return
            if sent <= 0:
                return
            del self._wbuf[:sent]

    def _read(self) -> None:
        budget = READ_BUDGET
        while budget > 0 and self._sock is not None:
            want = self._rcvbuf if self._trusted \
                else max(1, PREAUTH_MAX_FRAME + _LEN.size - len(self._rbuf))
            try:
                chunk = self._sock.recv(min(want, budget))
            except OSError as exc:
                if exc.errno not in _AGAIN:
                    self.disconnect()
                break
            if not chunk:
                self.disconnect()
                return
            self._last_read = time.monotonic()
            budget -= len(chunk)
            self._rbuf += chunk
            if not self._deliver_frames():
                return

    def _deliver_frames(self) -> bool:
        """Hand every complete frame over; False once the connection is closed."""
        while len(self._rbuf) >= _LEN.size:
            (size,) = _LEN.unpack_from(self._rbuf, 0)
            limit = MAX_FRAME if self._trusted else PREAUTH_MAX_FRAME
            if size == 0 or size > limit:
                self._refuse("frame length over the limit" if size else "empty frame")
                return False
            end = _LEN.size + size
            if len(self._rbuf) < end:
                return True
            body = bytes(self._rbuf[_LEN.size:end])
            del self._rbuf[:end]
            ok, message = self._open(body)
            if not ok:
                return False
            if self._on_message is not None:
                self._on_message(message)
            if self._state == CONNECTION_STATE.DISCONNECTED:
                return False
        return True

    def _open(self, body: bytes) -> tuple[bool, Any]:
        keys = self.encryptor
        if keys is not None:
            if self._opener is None:
                self._opener = keys.opener()
            try:
                body = self._opener.open(keys, body)
            except AuthError as exc:
                self._refuse(f"authentication failed: {exc}")
                return False, None
            if not self._trusted:
                self._trusted = self._last_attempt_ok = True
                if self._opener.used_previous:
                    logger.info("raft peer still sends under the previous secret",
                                extra={"peer": self._peer})
        try:
            message = codec.decode(body)
        except codec.CodecError:
            self._refuse("frame is not valid plain data")
            return False, None
        if self.recvRandKey:
            if type(message) is not tuple or len(message) != 2 \
                    or message[0] != self.recvRandKey:
                self._refuse("frame does not carry this connection's handshake key")
                return False, None
            message = message[1]
        return True, message


class WireServer:
    """Drop-in for ``pysyncobj.tcp_server.TcpServer`` that keeps listening.

    pysyncobj's server unbinds for good when one ``accept`` or ``setsockopt``
    fails (a client resetting at the wrong moment, or running out of file
    descriptors); this one drops that one client and goes on.
    """

    ACCEPTS_PER_EVENT = 16

    def __init__(self, poller: Any, host: str, port: int | str,
                 onNewConnection: Callable[[WireConnection], None],
                 sendBufferSize: int = 2 ** 13, recvBufferSize: int = 2 ** 13,
                 connectionTimeout: float = 3.5,
                 keepalive: tuple[int, int, int] | None = None) -> None:
        self._poller = poller
        self._host = host
        self._port = int(port)
        self._on_new = onNewConnection
        self._sndbuf = sendBufferSize
        self._rcvbuf = recvBufferSize
        self._timeout = connectionTimeout
        self._keepalive = keepalive
        self._sock: socket.socket | None = None
        self._fileno: int | None = None

    def bind(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._sndbuf)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
            sock.setblocking(False)
            sock.bind((self._host, self._port))
            sock.listen(16)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._fileno = sock.fileno()
        self._poller.subscribe(self._fileno, self._on_event,
                               POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR)

    def unbind(self) -> None:
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _on_event(self, _fd: int, event: int) -> None:
        if not event & POLL_EVENT_TYPE.READ or self._sock is None:
            return
        for _ in range(self.ACCEPTS_PER_EVENT):
            try:
                client, _addr = self._sock.accept()
            except OSError as exc:
                if exc.errno not in _AGAIN:
                    REFUSED.warn(f"accept failed: {errno.errorcode.get(exc.errno or 0, exc)}",
                                 None)
                return
            try:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._sndbuf)
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client.setblocking(False)
                conn = WireConnection(self._poller, socket=client, timeout=self._timeout,
                                      sendBufferSize=self._sndbuf, recvBufferSize=self._rcvbuf,
                                      keepalive=self._keepalive)
            except OSError:
                client.close()
                continue
            self._on_new(conn)
