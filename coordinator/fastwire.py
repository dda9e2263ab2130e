"""The keepalive fast path's datagram format: seal, open, replay window. Pure.

A keepalive is one UDP datagram, its acknowledgement another. Both are sealed with
AES-256-GCM under a per-node session key that the coordinator issued over the mTLS
gRPC channel (AgentService.OpenFastPath), so the certificate that authorized the key
also authorizes every datagram sealed with it. Layout (docs/design.md, "Keepalive
fast path"):

    magic "VF" (2) | version (1) | kind (1) | key id (8) | counter (8, big endian)
    | ciphertext of a KeepaliveRequest / KeepaliveResponse protobuf | GCM tag (16)

The 20-byte header is the additional authenticated data: nothing in it can be changed
without the tag failing. The nonce is ``kind (1) | 0 (3) | counter (8)``: each
direction of a session has its own counter, strictly increasing, and its own kind, so
no nonce repeats under a key. The receiver accepts only counters above the highest it
accepted (`ReplayGuard`), so a captured datagram cannot be replayed.

Nothing here reads a clock, a socket or a random source: keys, counters and arrival
times come from the callers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"VF"
VERSION = 1
KIND_KEEPALIVE = 1  # agent -> coordinator
KIND_ACK = 2  # coordinator -> agent
HEADER = struct.Struct("!2sBB8sQ")
TAG_BYTES = 16
KEY_BYTES = 32
KEY_ID_BYTES = 8
#: the largest datagram either side sends or accepts; a keepalive that does not fit
#: (hundreds of members) goes over gRPC. Below common path MTUs' fragmentation only
#: for very large nodes; a typical keepalive is 60-150 bytes.
MAX_DATAGRAM = 4096
MIN_DATAGRAM = HEADER.size + TAG_BYTES
MAX_COUNTER = 2**64 - 1


class Rejected(Exception):
    """A datagram that is dropped. `reason` is a short, fixed word (a metric label):
    never the datagram's bytes."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: every reason a datagram is dropped, as counted in metrics
REASONS = ("malformed", "oversize", "unknown_key", "unauthenticated", "replayed",
           "wrong_node", "invalid")


class Header(NamedTuple):
    """A datagram's clear header (a tuple: built once per datagram, so kept cheap)."""

    kind: int
    key_id: bytes
    counter: int


def parse_header(datagram: bytes, kind: int) -> Header:
    """Check the clear header of a datagram of the expected kind (cheap, before any
    decryption). Raises Rejected("oversize"|"malformed")."""
    if len(datagram) > MAX_DATAGRAM:
        raise Rejected("oversize")
    if len(datagram) < MIN_DATAGRAM:
        raise Rejected("malformed")
    magic, version, got_kind, key_id, counter = HEADER.unpack_from(datagram)
    if magic != MAGIC or version != VERSION or got_kind != kind or counter == 0:
        raise Rejected("malformed")
    return Header(got_kind, key_id, counter)


def _nonce(kind: int, counter: int) -> bytes:
    return struct.pack("!B3xQ", kind, counter)


class SessionKey:
    """One session's key: seals and opens both directions. The key stays out of repr."""

    __slots__ = ("_aead", "key_id")

    def __init__(self, key_id: bytes, key: bytes) -> None:
        if len(key_id) != KEY_ID_BYTES:
            raise ValueError(f"a key id is {KEY_ID_BYTES} bytes")
        if len(key) != KEY_BYTES:
            raise ValueError(f"a fast-path key is {KEY_BYTES} bytes")
        self.key_id = bytes(key_id)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"SessionKey(key_id={self.key_id.hex()})"

    def seal(self, kind: int, counter: int, payload: bytes) -> bytes:
        """One datagram. The caller never reuses (kind, counter) under this key."""
        if not 0 < counter <= MAX_COUNTER:
            raise ValueError("counter out of range")
        header = HEADER.pack(MAGIC, VERSION, kind, self.key_id, counter)
        datagram = header + self._aead.encrypt(_nonce(kind, counter), payload, header)
        if len(datagram) > MAX_DATAGRAM:
            raise ValueError(f"datagram of {len(datagram)} bytes exceeds {MAX_DATAGRAM}")
        return datagram

    def open(self, header: Header, datagram: bytes) -> bytes:
        """The payload of a datagram whose header `parse_header` accepted. Raises
        Rejected("unauthenticated") for a wrong key, a changed byte or a cut tail."""
        if header.key_id != self.key_id:
            raise Rejected("unknown_key")
        aad = datagram[:HEADER.size]
        try:
            return self._aead.decrypt(_nonce(header.kind, header.counter),
                                      datagram[HEADER.size:], aad)
        except InvalidTag:
            raise Rejected("unauthenticated") from None


@dataclass
class ReplayGuard:
    """Accepts a counter only above every counter accepted before (strictly increasing).

    No reordering window on purpose: keepalives are periodic and each one carries the
    node's whole report, so a datagram overtaken by a newer one is stale, and applying
    it late would put older reports over newer ones. Dropping it loses nothing the next
    round does not carry. `check` runs before decryption (no work for replays),
    `accept` only after the tag held, so forged datagrams cannot move the guard."""

    highest: int = 0

    def check(self, counter: int) -> bool:
        return counter > self.highest

    def accept(self, counter: int) -> None:
        self.highest = max(self.highest, counter)


def open_checked(key: SessionKey, window: ReplayGuard, header: Header,
                 datagram: bytes) -> bytes:
    """Authenticate, then replay-check, then accept: the whole receive rule."""
    if not window.check(header.counter):
        raise Rejected("replayed")
    payload = key.open(header, datagram)
    window.accept(header.counter)
    return payload
