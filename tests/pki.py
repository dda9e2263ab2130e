"""A throw-away CA with server and client certificates, for the TLS tests of the
metrics listener (unit and e2e). EC P-256, valid for an hour."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool, ips: Sequence[str] = ()
          ) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(hours=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ips:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        path.with_suffix(".key").chmod(0o600)


def make_pki(folder: Path, server_ips: Sequence[str] = ("127.0.0.1",)) -> Path:
    """Write ca.pem, server.pem/.key (IP SANs: `server_ips`) and client.pem/.key."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    _write(folder / "ca.pem", _cert("test-ca", ca_key, _name("test-ca"), ca_key, ca=True), None)
    for who, ips in (("server", server_ips), ("client", ())):
        k = ec.generate_private_key(ec.SECP256R1())
        _write(folder / f"{who}.pem", _cert(who, k, _name("test-ca"), ca_key, False, ips), k)
    return folder
