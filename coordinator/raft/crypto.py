"""Cluster-secret frame protection: AES-GCM with a fresh key per connection direction.

Why this shape:

* **authenticate before anything else** - a frame is decrypted and its tag
  checked before a single byte of it reaches the codec (wire.py), so a
  sender without the secret can only make us close the connection.
* **a key per connection and direction** - the first frame a side sends on a
  connection carries a random 16-byte salt; both sides derive that
  direction's key as HKDF(master, salt). Nonces are then a frame counter,
  which never repeats under one key (random nonces under one long-lived key
  would hit AES-GCM's 2**32-message limit on a busy cluster), and a frame
  that is replayed, dropped or reordered fails the counter check.
* **rotation** - the master keys come from the current secret and an
  optional previous one. A node *accepts* a connection whose first frame
  opens under either, and the choice is made once per connection (later
  frames cost one decryption). It *sends* under the current secret, except
  that it answers a peer under the key that peer used, and a connection it
  opens falls back to the previous secret after an attempt under the
  current one was refused (wire.py). That is what lets nodes on "new +
  previous" and nodes still on "old" talk during a rolling restart.
* **cheap** - the master keys are derived once per process (PBKDF2, slow on
  purpose); per frame it is one AES-GCM operation (a few microseconds),
  unlike pysyncobj's Fernet (~150 us per message, measured).

Frame body (after the u32 length, see wire.py)::

    version (1) | counter (8, big-endian) | salt (16, only when counter == 0) | ciphertext+tag

The version, counter and salt are authenticated as associated data.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

VERSION = 2
_HEADER = struct.Struct(">BQ")
_SALT = 16
_TAG = 16
_KDF_SALT = b"vnfha-raft-wire-v1"
_HKDF_INFO = b"vnfha-raft-frame-v2"
#: smallest valid body: header + tag (a first frame also has the salt)
MIN_BODY = _HEADER.size + _TAG


class AuthError(Exception):
    """A frame that did not authenticate (wrong secret, tampered, replayed or reordered)."""


def master_key(secret: str | bytes) -> bytes:
    """The long-lived key of one secret (deliberately slow: PBKDF2, 100k rounds)."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=_KDF_SALT,
                      iterations=100_000).derive(raw)


def _direction_key(master: bytes, salt: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO).derive(master)
    return AESGCM(key)


def _nonce(counter: int) -> bytes:
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "big")


class Sealer:
    """Sending half of one connection: counter nonces under a key of its own."""

    __slots__ = ("_aead", "_counter", "_salt")

    def __init__(self, master: bytes) -> None:
        self._salt = os.urandom(_SALT)
        self._aead = _direction_key(master, self._salt)
        self._counter = 0

    def seal(self, plaintext: bytes) -> bytes:
        counter = self._counter
        self._counter = counter + 1
        header = _HEADER.pack(VERSION, counter)
        if counter == 0:
            header += self._salt
        return header + self._aead.encrypt(_nonce(counter), plaintext, header)


class Opener:
    """Receiving half of one connection; fixed to one master key by its first frame."""

    __slots__ = ("_aead", "_expected", "index")

    def __init__(self) -> None:
        self._aead: AESGCM | None = None
        self._expected = 0
        #: which master key the peer uses (0 current, 1 previous); None before its first frame
        self.index: int | None = None

    @property
    def used_previous(self) -> bool:
        return bool(self.index)

    def open(self, keys: WireKeys, body: bytes) -> bytes:
        """Return the plaintext of ``body`` or raise :class:`AuthError`."""
        if len(body) < MIN_BODY:
            raise AuthError("frame too short")
        version, counter = _HEADER.unpack_from(body, 0)
        if version != VERSION:
            raise AuthError("unknown frame version")
        if counter != self._expected:
            raise AuthError("frame out of sequence")
        nonce = _nonce(counter)
        if self._aead is None:
            if counter != 0 or len(body) < MIN_BODY + _SALT:
                raise AuthError("first frame without salt")
            header = body[: _HEADER.size + _SALT]
            salt = header[_HEADER.size:]
            ciphertext = body[len(header):]
            for i, master in enumerate(keys.masters):
                aead = _direction_key(master, salt)
                try:
                    plaintext = aead.decrypt(nonce, ciphertext, header)
                except InvalidTag:
                    continue
                self._aead, self.index = aead, i
                break
            else:
                raise AuthError("frame does not authenticate under the cluster secret")
        else:
            header = body[: _HEADER.size]
            try:
                plaintext = self._aead.decrypt(nonce, body[_HEADER.size:], header)
            except InvalidTag:
                raise AuthError("frame does not authenticate") from None
        self._expected = counter + 1
        return plaintext


class WireKeys:
    """The node's master keys; what pysyncobj holds as its ``encryptor``.

    pysyncobj only tests it for truth (to run its random-key handshake) and
    hands it to each connection; wire.py does the sealing and opening.
    """

    def __init__(self, secret: str | bytes, previous: str | bytes | None = None) -> None:
        current = master_key(secret)
        self.masters: tuple[bytes, ...] = (current,) if previous is None \
            else (current, master_key(previous))

    def sealer(self, index: int = 0) -> Sealer:
        """Seal under master ``index`` (0: the current secret, 1: the previous one)."""
        return Sealer(self.masters[index % len(self.masters)])

    @staticmethod
    def opener() -> Opener:
        return Opener()

    def __repr__(self) -> str:  # never show key material
        return f"WireKeys(keys={len(self.masters)})"
