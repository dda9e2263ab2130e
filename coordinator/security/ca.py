"""A small certificate authority: `vnfha certs init|issue` and the lab harness.

Writes PEM files into a folder the caller owns: a CA, certificates for vnfha's own
mTLS (`issue_identity`: one SAN URI `vnfha://kind/name`, usable as client and
server, docs/security.md), and plain server/client certificates (etcd with
`--client-cert-auth`). `vnfha certs` keeps the CA key on disk (`save_key`, `load`);
the lab harness (`vnfha_lab.testpki`) keeps it in memory for the life of a test.
Sites with their own PKI issue the same SAN URIs from it instead.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vnfha.coordinator.security.identity import ROLE_DNS_SUFFIX, role_dns_name

_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


class CertAuthority:
    """A CA whose key stays in memory; `issue_*` writes cert + key files under `folder`."""

    def __init__(self, folder: Path, name: str = "vnfha-test-ca",
                 validity: datetime.timedelta = _VALIDITY) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.validity = validity
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(self._key, hashes.SHA256()))
        self.ca_file = self.folder / f"{name}.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    @property
    def key_file(self) -> Path:
        return self.folder / f"{self.name}-key.pem"

    def save_key(self) -> Path:
        """Keep the CA key on disk (0600) so `load` can issue more later (`vnfha certs`)."""
        self.key_file.touch(mode=0o600)
        self.key_file.chmod(0o600)
        self.key_file.write_bytes(self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return self.key_file

    @classmethod
    def load(cls, folder: Path, name: str = "vnfha-test-ca") -> CertAuthority:
        """A CA made earlier with `save_key`."""
        self = cls.__new__(cls)
        self.folder = Path(folder)
        self.name = name
        self.validity = _VALIDITY
        self.ca_file = self.folder / f"{name}.pem"
        self._cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self._key = key
        return self

    def issue_identity(self, identity: str, san_ips: tuple[str, ...] = (),
                       san_dns: tuple[str, ...] = (), file_name: str | None = None,
                       validity: datetime.timedelta | None = None,
                       expired: bool = False, extra_uris: tuple[str, ...] = ()) -> CertFiles:
        """A vnfha certificate for `identity` ("node/vm1", "admin/alice", ...): SAN URI
        vnfha://<identity>, the role name `<kind>.vnfha.internal` that clients check
        (identity.role_dns_name), plus IPs/DNS names it serves on (127.0.0.1, ::1 and
        localhost always). `expired` makes one that ended an hour ago (tests)."""
        ips = ("127.0.0.1", "::1", *san_ips)
        kind = identity.partition("/")[0]
        claimed = [d for d in san_dns if d.lower().endswith(ROLE_DNS_SUFFIX)]
        if claimed:
            # Role names are what clients check a server by: only the identity's own
            # kind may be named, and the CA adds it itself.
            raise ValueError(f"DNS names ending in {ROLE_DNS_SUFFIX} are role names, set by "
                             f"the CA from the identity; not allowed here: {claimed[0]}")
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(f"vnfha://{identity}"),
            *(x509.UniformResourceIdentifier(u) for u in extra_uris),
            *(x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(ips)),
            *(x509.DNSName(d) for d in dict.fromkeys(
                ("localhost", role_dns_name(kind), *san_dns)))]
        now = datetime.datetime.now(datetime.UTC)
        window = ((now - datetime.timedelta(days=2), now - datetime.timedelta(hours=1))
                  if expired else (now - datetime.timedelta(minutes=5),
                                   now + (validity or self.validity)))
        return self._issue(file_name or identity.replace("/", "-"),
                           [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                           x509.SubjectAlternativeName(names), window=window,
                           common_name=identity)

    def issue_server(self, name: str = "etcd-server") -> CertFiles:
        """A server certificate valid for 127.0.0.1, ::1 and localhost."""
        san = x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
            x509.DNSName("localhost")])
        # etcd also dials itself (its gRPC gateway) with its server certificate.
        return self._issue(name, [ExtendedKeyUsageOID.SERVER_AUTH,
                                  ExtendedKeyUsageOID.CLIENT_AUTH], san)

    def issue_client(self, name: str) -> CertFiles:
        """A client certificate with common name `name` (etcd may take the CN as its user)."""
        return self._issue(name, [ExtendedKeyUsageOID.CLIENT_AUTH], None)

    def _issue(self, name: str, usages: list[x509.ObjectIdentifier],
               san: x509.SubjectAlternativeName | None,
               window: tuple[datetime.datetime, datetime.datetime] | None = None,
               common_name: str | None = None) -> CertFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        start, end = window or (now - datetime.timedelta(minutes=5), now + _VALIDITY)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        common_name or name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        files = CertFiles(self.folder / f"{name}.pem", self.folder / f"{name}-key.pem")
        # Written to temporary names and renamed: a reader never sees half a file, and
        # the key is 0600 from its first byte.
        tmp_key = files.key.with_name(files.key.name + ".tmp")
        tmp_key.unlink(missing_ok=True)
        fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        tmp_cert = files.cert.with_name(files.cert.name + ".tmp")
        tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp_key, files.key)
        os.replace(tmp_cert, files.cert)
        return files
