"""Throwaway certificates for tests, benchmarks and the demo (never for production).

`TestCA` is the product's `CertAuthority` with its key kept in memory and a short
default validity; `LabPki` issues one certificate per identity of a lab cluster on
first use. Tests also build a second, unrelated CA that servers must not trust.
"""

from __future__ import annotations

from pathlib import Path

from vnfha.coordinator.security.ca import CertAuthority, CertFiles
from vnfha.coordinator.security.tls import TlsFiles

__all__ = ["CertFiles", "LabPki", "TestCA"]


class TestCA(CertAuthority):
    """A lab CA (2-day certificates by default)."""

    __test__ = False  # not a pytest test class, despite the name


class LabPki:
    """The certificates of one lab or test cluster, issued on first use per identity."""

    __test__ = False

    def __init__(self, folder: Path) -> None:
        self.ca = TestCA(folder)
        self._issued: dict[tuple[str, tuple[str, ...]], CertFiles] = {}

    def files(self, identity: str, san_ips: tuple[str, ...] = ()) -> TlsFiles:
        key = (identity, tuple(san_ips))
        if key not in self._issued:
            self._issued[key] = self.ca.issue_identity(
                identity, san_ips=key[1],
                file_name=f"{identity.replace('/', '-')}-{len(self._issued)}")
        cert = self._issued[key]
        return TlsFiles(self.ca.ca_file, cert.cert, cert.key)

    def section(self, identity: str, san_ips: tuple[str, ...] = ()) -> dict[str, str]:
        """A config `tls:` mapping for this identity."""
        f = self.files(identity, san_ips)
        return {"ca_file": str(f.ca_file), "cert_file": str(f.cert_file),
                "key_file": str(f.key_file)}

    def args(self, identity: str, san_ips: tuple[str, ...] = ()) -> list[str]:
        """The `--cacert/--cert/--key` arguments for this identity."""
        f = self.files(identity, san_ips)
        return ["--cacert", str(f.ca_file), "--cert", str(f.cert_file), "--key",
                str(f.key_file)]
