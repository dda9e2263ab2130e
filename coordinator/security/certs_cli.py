"""`vnfha certs`: a lab CA and the certificates of a cluster (docs/security.md).

For labs and tests. Production should use the organisation's PKI; all vnfha needs
is a CA bundle and, per process, a certificate with one SAN URI vnfha://kind/name.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import TextIO

CA_NAME = "ca"


class CertsError(ValueError):
    """A refused `vnfha certs` request; the message says why."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = sub.add_parser("certs", help="make a lab CA and certificates (mTLS)")
    csub = c.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    i = csub.add_parser("init", help="create a CA in DIR (ca.pem, ca-key.pem 0600)")
    i.add_argument("--dir", required=True, type=Path, metavar="DIR")
    i.add_argument("--days", type=int, default=365, help="CA validity (default 365)")
    i.set_defaults(func=_cmd_init)
    s = csub.add_parser("issue", help="issue a certificate for one identity")
    s.add_argument("--dir", required=True, type=Path, metavar="DIR",
                   help="folder of the CA made by 'certs init'; the files go there too")
    s.add_argument("--identity", required=True, metavar="KIND/NAME",
                   help="node/vm1, coordinator/c1, admin/alice, viewer/noc or lb/lb1")
    s.add_argument("--san-ip", action="append", default=[], metavar="IP",
                   help="an address it serves on (coordinators, state-sync receivers)")
    s.add_argument("--san-dns", action="append", default=[], metavar="NAME")
    s.add_argument("--days", type=int, default=90, help="validity (default 90)")
    s.set_defaults(func=_cmd_issue)


def _cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    from vnfha.coordinator.security.ca import CertAuthority

    if (args.dir / f"{CA_NAME}-key.pem").exists():
        raise CertsError(f"{args.dir} already holds a CA ({CA_NAME}-key.pem); refusing to "
                         "overwrite it")
    ca = CertAuthority(args.dir, name=CA_NAME, validity=datetime.timedelta(days=args.days))
    ca.save_key()
    print(f"CA written: {ca.ca_file} (key {ca.key_file}, mode 0600)", file=out)
    return 0


def _cmd_issue(args: argparse.Namespace, out: TextIO) -> int:
    # Here, not at the top: every `vnfha` command builds this parser (start-up time).
    from vnfha.coordinator.security.ca import CertAuthority
    from vnfha.coordinator.security.identity import IdentityError, parse_uri

    try:
        parse_uri(f"vnfha://{args.identity}")
    except IdentityError as e:
        raise CertsError(f"--identity {args.identity!r}: {e}") from None
    if not (args.dir / f"{CA_NAME}-key.pem").exists():
        raise CertsError(f"{args.dir} holds no CA; run: vnfha certs init --dir {args.dir}")
    ca = CertAuthority.load(args.dir, name=CA_NAME)
    try:
        files = ca.issue_identity(args.identity, san_ips=tuple(args.san_ip),
                                  san_dns=tuple(args.san_dns),
                                  validity=datetime.timedelta(days=args.days))
    except ValueError as e:  # a bad --san-ip, or a role name asked for by hand
        raise CertsError(str(e)) from None
    print(f"vnfha://{args.identity}: {files.cert} (key {files.key}, mode 0600), "
          f"CA {ca.ca_file}", file=out)
    return 0
