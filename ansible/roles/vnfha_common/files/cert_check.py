"""Does a certificate issued by the roles still do? Run on the controller by tls.yml.

Exit 0: the certificate exists, is signed by the CA in --ca, names exactly the
identity URI, includes every required address, and stays valid for more than --days
days. Exit 1 with the reason on stdout: it must be issued (again). Exit 2: bad usage.
Only public files are read (never a key), so the task that runs this may log freely.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

#: the same as vnfha.coordinator.security.identity.ROLE_DNS_SUFFIX (this script runs on
#: the Ansible controller, which need not have vnfha installed; a test keeps them equal)
ROLE_DNS_SUFFIX = ".vnfha.internal"


def reason(cert_path: Path, ca_path: Path, uri: str, ips: list[str], dns: list[str],
           days: int, now: datetime.datetime) -> str | None:
    """Why the certificate must be issued again, or None when it still does."""
    if not cert_path.exists():
        return "no certificate yet"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "not signed by the current CA"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "no subjectAltName"
    if san.get_values_for_type(x509.UniformResourceIdentifier) != [uri]:
        return f"identity is not {uri}"
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    if any(ipaddress.ip_address(ip) not in have_ips for ip in ips):
        return "an address is missing"
    have_dns = set(san.get_values_for_type(x509.DNSName))
    if not set(dns) <= have_dns:
        return "a DNS name is missing"
    # Clients check a server by its role name (vnfha.coordinator.security.identity
    # .role_dns_name); certificates issued before it existed are issued again.
    role = uri.removeprefix("vnfha://").partition("/")[0] + ROLE_DNS_SUFFIX
    if role not in have_dns:
        return f"the role name {role} is missing"
    if cert.not_valid_after_utc - now <= datetime.timedelta(days=days):
        return f"expires within {days} days"
    return None


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--ca", type=Path, required=True)
    p.add_argument("--cert", type=Path, required=True)
    p.add_argument("--identity", required=True)
    p.add_argument("--ip", action="append", default=[])
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--days", type=int, required=True)
    a = p.parse_args()
    why = reason(a.cert, a.ca, f"vnfha://{a.identity}", a.ip, a.dns, a.days,
                 datetime.datetime.now(datetime.UTC))
    if why is None:
        print("valid")
        return 0
    print(why)
    return 1


if __name__ == "__main__":
    sys.exit(main())
