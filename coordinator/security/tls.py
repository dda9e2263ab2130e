"""TLS material from PEM files: parsed from config, reloaded when the files change.

Servers use grpc's dynamic server credentials: a fetcher is asked for a new
configuration at every handshake and answers "unchanged" unless the files' stat
changed, so a rotated certificate is served from the next connection on, and
connections already open (keepalive streams) are not touched.

Clients cannot change the credentials of a channel, so `ChannelSource` hands out a
channel and replaces it (for new calls only) once the files change; calls already
running keep their channel until they end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc

from vnfha.coordinator.confparse import Ctx, check_keys, path_setting, section
from vnfha.coordinator.security.identity import role_dns_name

log = logging.getLogger("vnfha.tls")

ENV_CA, ENV_CERT, ENV_KEY = "VNFHA_CACERT", "VNFHA_CERT", "VNFHA_KEY"
#: channels kept open after a rotation so their running streams can finish
_MAX_RETIRED = 4


class TlsError(ValueError):
    """The TLS files are missing, unreadable or do not fit together."""


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def stamp(self) -> tuple[tuple[int, int, int], ...]:
        """Changes whenever any of the three files is rewritten or replaced."""
        out = []
        for p in (self.ca_file, self.cert_file, self.key_file):
            try:
                st = os.stat(p)
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((0, 0, 0))
        return tuple(out)

    def load(self) -> tuple[bytes, bytes, bytes]:
        """(ca, cert, key) PEM bytes, checked to fit together; raises TlsError."""
        try:
            ca = self.ca_file.read_bytes()
            cert = self.cert_file.read_bytes()
            key = self.key_file.read_bytes()
        except OSError as e:
            raise TlsError(f"cannot read {e.filename}: {e.strerror}") from None
        check_material(ca, cert, key, self)
        return ca, cert, key


def check_material(ca: bytes, cert: bytes, key: bytes, where: TlsFiles) -> None:
    """Refuse a half-rotated set (new certificate, old key) before grpc sees it."""
    from cryptography import x509  # here, not at import: config loading stays light
    from cryptography.hazmat.primitives import serialization

    try:
        x509.load_pem_x509_certificates(ca)
    except ValueError:
        raise TlsError(f"{where.ca_file}: not a PEM certificate (CA bundle)") from None
    try:
        c = x509.load_pem_x509_certificate(cert)
    except ValueError:
        raise TlsError(f"{where.cert_file}: not a PEM certificate") from None
    try:
        k = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise TlsError(f"{where.key_file}: not an unencrypted PEM private key") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if c.public_key().public_bytes(enc, pub) != k.public_key().public_bytes(enc, pub):
        raise TlsError(f"{where.key_file} is not the key of {where.cert_file}")


def parse_tls(ctx: Ctx, where: str, value: Any, base: Path) -> TlsFiles | None:
    """The `tls: {ca_file, cert_file, key_file}` setting; None when absent."""
    if value is None:
        return None
    sec: Mapping[str, Any] = section(ctx, where, value)
    keys = ("ca_file", "cert_file", "key_file")
    check_keys(ctx, where, sec, keys)
    missing = [k for k in keys if k not in sec]
    if missing:
        ctx.fail(f"{where} needs {', '.join(keys)}; missing {', '.join(missing)}")
    # The files are read (and checked to fit together) when the listener or client
    # starts, and again at every rotation; a config can be checked before they exist.
    return TlsFiles(*(path_setting(ctx, f"{where}.{k}", sec[k], base) for k in keys))


def from_env_or_args(cacert: str | None, cert: str | None, key: str | None) -> TlsFiles | None:
    """CLI flags, falling back to VNFHA_CACERT/VNFHA_CERT/VNFHA_KEY; None if none given."""
    values = [cacert or os.environ.get(ENV_CA), cert or os.environ.get(ENV_CERT),
              key or os.environ.get(ENV_KEY)]
    if not any(values):
        return None
    if not all(values):
        raise TlsError("--cacert, --cert and --key (or VNFHA_CACERT, VNFHA_CERT, VNFHA_KEY) "
                       "go together; give all three")
    files = TlsFiles(*(Path(v) for v in values))  # type: ignore[arg-type]
    files.load()
    return files


def check_serves_as(cert_pem: bytes, where: Path, kind: str) -> None:
    """Refuse a server certificate that lacks its kind's role name: clients check
    servers by it (identity.role_dns_name), so such a server would be refused by
    every client, later and with a vaguer error, instead of failing at start."""
    from cryptography import x509

    name = role_dns_name(kind)
    try:
        san = x509.load_pem_x509_certificate(cert_pem).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
    except (ValueError, x509.ExtensionNotFound):
        dns = []
    if name not in dns:
        raise TlsError(f"{where}: lacks the DNS name {name}, by which clients check a "
                       f"{kind}; issue it again (vnfha certs issue --identity {kind}/NAME, "
                       "or your CA with that name added; docs/security.md)")


class ReloadingServerCredentials:
    """Server credentials that require a client certificate signed by the CA file and
    pick up new files at the next handshake. `serves_as` (a kind) also requires the
    certificate to carry that kind's role name, at start and at every reload."""

    def __init__(self, files: TlsFiles, serves_as: str | None = None) -> None:
        self.files = files
        self.serves_as = serves_as
        self._lock = threading.Lock()
        self._stamp = files.stamp()
        self._bad_stamp: tuple[Any, ...] | None = None
        self.reloads = 0
        import grpc  # lazy: config loading (vnfha config check) must not pull in gRPC

        ca, cert, key = self._load()
        self._initial = grpc.ssl_server_certificate_configuration([(key, cert)], ca)

    def _load(self) -> tuple[bytes, bytes, bytes]:
        ca, cert, key = self.files.load()
        if self.serves_as is not None:
            check_serves_as(cert, self.files.cert_file, self.serves_as)
        return ca, cert, key

    def credentials(self) -> grpc.ServerCredentials:
        import grpc

        return grpc.dynamic_ssl_server_credentials(self._initial, self._fetch,
                                                   require_client_authentication=True)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by grpc per handshake; None keeps the current configuration."""
        stamp = self.files.stamp()
        with self._lock:
            if stamp == self._stamp or stamp == self._bad_stamp:
                return None
            try:
                ca, cert, key = self._load()
            except TlsError as e:  # mid-rotation (cert written, key not yet): keep the old
                self._bad_stamp = stamp
                log.warning("tls files not reloaded; keeping the current ones",
                            extra={"error": str(e)})
                return None
            self._stamp = stamp
            self.reloads += 1
        log.info("tls certificate reloaded", extra={"cert_file": str(self.files.cert_file)})
        import grpc

        return grpc.ssl_server_certificate_configuration([(key, cert)], ca)


def server_name_option(kind: str) -> tuple[str, str]:
    """The channel option that makes a TLS client accept only a server certificate of
    `kind` (its role name), whatever address it dials."""
    return ("grpc.ssl_target_name_override", role_dns_name(kind))


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    import grpc

    ca, cert, key = files.load()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                        certificate_chain=cert)


class ChannelSource:
    """One target's channel (sync or asyncio), TLS or plain, re-created for new calls
    after the TLS files change. `get()` stats the files at most every `check_every` s.
    With TLS the server must present a certificate of `server_kind` (its role name):
    a coordinator by default, a node for state sync between VNFCs."""

    def __init__(self, target: str, tls: TlsFiles | None,
                 options: Sequence[tuple[str, Any]] = (), aio: bool = False,
                 check_every: float = 1.0, server_kind: str = "coordinator") -> None:
        self.target = target
        self.tls = tls
        self._options = list(options)
        if tls is not None:
            self._options.append(server_name_option(server_kind))
        self._aio = aio
        self._check_every = check_every
        self._lock = threading.Lock()
        self._retired: list[Any] = []
        self._checked = time.monotonic()
        self._stamp = tls.stamp() if tls is not None else ()
        self._channel = self._open()

    def _open(self) -> Any:
        import grpc

        mod = grpc.aio if self._aio else grpc
        if self.tls is None:
            return mod.insecure_channel(self.target, options=self._options)
        return mod.secure_channel(self.target, channel_credentials(self.tls),
                                  options=self._options)

    def get(self) -> Any:
        if self.tls is None:
            return self._channel
        now = time.monotonic()
        with self._lock:
            if now - self._checked < self._check_every:
                return self._channel
            self._checked = now
            stamp = self.tls.stamp()
            if stamp == self._stamp:
                return self._channel
            try:
                fresh = self._open()
            except TlsError as e:
                log.warning("tls files not reloaded; keeping the current channel",
                            extra={"target": self.target, "error": str(e)})
                self._stamp = stamp
                return self._channel
            self._stamp = stamp
            self._retired.append(self._channel)
            self._channel = fresh
            if len(self._retired) > _MAX_RETIRED and not self._aio:
                self._retired.pop(0).close()
            log.info("tls files changed; new calls use a new channel",
                     extra={"target": self.target})
            return self._channel

    def renew(self) -> None:
        """New calls use a new channel (a new connection) from now on. For a connection
        that TCP itself has written off for a while: after a long cut its retransmission
        back-off can hold data for seconds after the path is back, and every stream on
        it (a fresh subscription too) waits behind it. The old channel is retired like a
        rotated one (its calls end as their owners cancel them)."""
        with self._lock:
            fresh = self._open()
            self._retired.append(self._channel)
            self._channel = fresh
            if len(self._retired) > _MAX_RETIRED and not self._aio:
                self._retired.pop(0).close()

    def close(self) -> Any:
        """Close every channel (an awaitable list for aio channels)."""
        with self._lock:
            channels = [self._channel, *self._retired]
            self._retired = []
        if self._aio:
            return [c.close() for c in channels]
        for c in channels:
            c.close()
        return None


class Stubs:
    """One stub per endpoint, indexable like a list, that follows `ChannelSource`
    rotations: `stubs[i]` is built on endpoint i's current channel."""

    def __init__(self, endpoints: Sequence[str], stub_class: Callable[[Any], Any],
                 tls: TlsFiles | None, options: Sequence[tuple[str, Any]] = (),
                 server_kind: str = "coordinator") -> None:
        self.sources = [ChannelSource(e, tls, options, server_kind=server_kind)
                        for e in endpoints]
        self._stub_class = stub_class
        self._cache: dict[int, tuple[Any, Any]] = {}

    def __getitem__(self, i: int) -> Any:
        channel = self.sources[i].get()
        cached = self._cache.get(i)
        if cached is None or cached[0] is not channel:
            cached = (channel, self._stub_class(channel))
            self._cache[i] = cached
        return cached[1]

    def renew(self, i: int) -> None:
        """Endpoint i's next stub is built on a new channel (ChannelSource.renew)."""
        self.sources[i].renew()

    def __len__(self) -> int:
        return len(self.sources)

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self.sources)))

    def close(self) -> None:
        for s in self.sources:
            s.close()
