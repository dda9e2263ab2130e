"""What an attacker sends to a Raft port: pickle payloads in the old and new framings.

The old framing is pysyncobj's (native-endian i32 length, zlib, pickle, the
old AES-GCM token of crypto.py v1), so the same tests show the hole on the
code before the fix. New-framing helpers import vnfha lazily for the same
reason.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC


class Touch:
    """Unpickling this creates ``path``: proof that a payload ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def pickle_payload(marker: Path) -> bytes:
    return pickle.dumps(Touch(marker), 2)


def pickled_command(marker: Path) -> bytes:
    """A pysyncobj log entry command: type byte REGULAR + the pickled call."""
    return b"\x00" + pickle_payload(marker)


# ------------------------------------------------------------- old framing
def _old_token(secret: str, data: bytes) -> bytes:
    key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"vnfha-raft-wire-v1",
                     iterations=100_000).derive(secret.encode())
    header = struct.pack(">cQ", b"\x01", int(time.monotonic()))
    nonce = os.urandom(12)
    return header + nonce + AESGCM(key).encrypt(nonce, data, header)


def old_frame(payload: bytes, secret: str | None = None) -> bytes:
    """pysyncobj's frame of a pickle (optionally under the pre-fix AES-GCM token)."""
    data = zlib.compress(payload, 3)
    if secret is not None:
        data = _old_token(secret, data)
    return struct.pack("i", len(data)) + data


# ------------------------------------------------------------- new framing
def new_frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def sealed(secret: str, plaintext: bytes) -> bytes:
    from vnfha.coordinator.raft.crypto import WireKeys

    return new_frame(WireKeys(secret).sealer().seal(plaintext))


# ------------------------------------------------------------------ sockets
def connect(addr: str, timeout: float = 2.0) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def closed_by_peer(sock: socket.socket, within: float = 3.0) -> bool:
    """True if the other side closes (EOF or reset) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def send_and_check_closed(addr: str, data: bytes, within: float = 3.0) -> bool:
    """Send ``data`` on a fresh connection; True if the server then hung up."""
    with connect(addr) as sock:
        try:
            sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return closed_by_peer(sock, within)


class SecretClient:
    """A client that holds the cluster secret and speaks the new wire correctly."""

    def __init__(self, addr: str, secret: str) -> None:
        from vnfha.coordinator.raft import codec
        from vnfha.coordinator.raft.crypto import WireKeys

        self._codec = codec
        self._keys = WireKeys(secret)
        self._sealer = self._keys.sealer()
        self._opener = self._keys.opener()
        self.sock = connect(addr)
        self._buf = b""
        self.my_key = os.urandom(32)
        self.send_raw(self.my_key)
        self.peer_key = self.recv()  # the server's handshake key

    def send_raw(self, value: Any) -> None:
        self.sock.sendall(new_frame(self._sealer.seal(self._codec.encode(value))))

    def send(self, message: Any) -> None:
        self.send_raw((self.peer_key, message))

    def send_body(self, body: bytes) -> None:
        """Seal arbitrary bytes (not necessarily a codec value)."""
        self.sock.sendall(new_frame(self._sealer.seal(body)))

    def recv(self, timeout: float = 3.0) -> Any:
        self.sock.settimeout(timeout)
        while True:
            if len(self._buf) >= 4:
                (n,) = struct.unpack_from(">I", self._buf)
                if len(self._buf) >= 4 + n:
                    body, self._buf = self._buf[4:4 + n], self._buf[4 + n:]
                    value = self._codec.decode(self._opener.open(self._keys, body))
                    if type(value) is tuple and len(value) == 2 and value[0] == self.my_key:
                        return value[1]
                    raise ConnectionError("server frame without our handshake key")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self._buf += chunk

    def close(self) -> None:
        self.sock.close()
