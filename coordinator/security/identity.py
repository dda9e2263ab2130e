"""Who is calling: the one vnfha identity named by the peer's certificate.

A certificate names its holder with a SAN URI `vnfha://<kind>/<name>`. Exactly one
such URI is required: a certificate naming none or several is refused, so a
certificate can never be read as two different callers.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: config loading and the CLI need not pay for it
    from cryptography import x509

KINDS = ("node", "coordinator", "admin", "viewer", "lb")
#: callers that hold no certificate but are trusted by where they connect from
LOCAL = "local"        # the 0600 unix admin socket: local root
INSECURE = "insecure"  # a listener configured without TLS (single loopback coordinator)

#: Every certificate of a kind also carries the DNS name `<kind>.vnfha.internal`
#: (`.internal` is reserved for private use). gRPC's Python client checks only the
#: server's DNS and IP names, never its URI, so a client that must reach a
#: coordinator asks for `coordinator.vnfha.internal` (grpc.ssl_target_name_override)
#: instead of the address it dials: a node's certificate, valid for the same
#: address, then no longer passes for a coordinator.
ROLE_DNS_SUFFIX = ".vnfha.internal"


def role_dns_name(kind: str) -> str:
    """The DNS name that every certificate of `kind` carries and clients check."""
    if kind not in KINDS:
        raise IdentityError(f"unknown identity kind {kind!r}")
    return f"{kind}{ROLE_DNS_SUFFIX}"


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
SCHEME = "vnfha://"


class IdentityError(ValueError):
    """The peer certificate names no usable vnfha identity."""


@dataclass(frozen=True)
class Identity:
    kind: str
    name: str

    def __str__(self) -> str:
        if self.kind in (LOCAL, INSECURE):
            return self.kind
        return f"{SCHEME}{self.kind}/{self.name}"


LOCAL_IDENTITY = Identity(LOCAL, "root")
INSECURE_IDENTITY = Identity(INSECURE, "")


def parse_uri(uri: str) -> Identity:
    """`vnfha://node/vm1` -> Identity("node", "vm1"); anything else raises IdentityError."""
    if not uri.startswith(SCHEME):
        raise IdentityError(f"not a vnfha identity URI: {uri[:80]!r}")
    kind, sep, name = uri[len(SCHEME):].partition("/")
    if not sep or kind not in KINDS or not _NAME_RE.fullmatch(name):
        raise IdentityError(f"malformed vnfha identity {uri[:80]!r}: expected "
                            f"vnfha://<{'|'.join(KINDS)}>/<name>")
    return Identity(kind, name)


def uri_of(identity: Identity) -> str:
    return f"{SCHEME}{identity.kind}/{identity.name}"


def from_certificate(cert: x509.Certificate) -> Identity:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
                if u.startswith(SCHEME)]
    except x509.ExtensionNotFound:
        uris = []
    if not uris:
        raise IdentityError("certificate names no vnfha identity (SAN URI vnfha://kind/name)")
    if len(uris) > 1:
        raise IdentityError(f"certificate names {len(uris)} vnfha identities; exactly one "
                            "is allowed")
    return parse_uri(uris[0])


@functools.lru_cache(maxsize=1024)
def from_pem(pem: bytes) -> Identity:
    """The identity of a PEM certificate (cached: a peer presents the same one per call).

    The gRPC auth context of this grpc version exposes the peer certificate as
    `x509_pem_cert` but no URI SAN property, so the certificate itself is parsed."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise IdentityError("peer certificate cannot be parsed") from e
    return from_certificate(cert)


def from_auth_context(auth: dict[str, list[bytes]], peer: str, tls: bool) -> Identity:
    """The caller of one RPC, from grpc's auth context and peer string.

    A unix-socket peer is local root (the socket is 0600). A listener without TLS
    calls everyone `insecure`. With TLS, the verified client certificate decides."""
    if peer.startswith("unix:"):
        return LOCAL_IDENTITY
    if not tls:
        return INSECURE_IDENTITY
    pems = auth.get("x509_pem_cert") or []
    if not pems:
        raise IdentityError("no client certificate")
    return from_pem(bytes(pems[0]))
