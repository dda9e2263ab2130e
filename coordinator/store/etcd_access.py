"""Is this coordinator allowed to use etcd, and does etcd take our largest
transactions? Checked once at start, explained for operators.

A wrong password, a role without the prefix, an etcd certificate we do not
trust or a client certificate etcd does not accept never fix themselves, so a
coordinator that meets one at start exits with a message that names the
setting to fix, instead of running on without a store. etcd being down is
different: that can end any second, so the coordinator starts anyway and
catches up (etcd.py). The same explanations are added to the store's runtime
warnings, for when credentials are changed under a running coordinator.
"""

from __future__ import annotations

import time

import grpc

from vnfha.coordinator.store.etcd_client import EtcdClient, EtcdRpcError, create_revision_is, put_op
from vnfha.coordinator.store.etcd_config import EtcdSettings
from vnfha.coordinator.store.etcd_layout import TXN_OPS_NEEDED, Keys

#: the check's write: a put the compare never lets happen (no key has create revision -1),
#: but etcd checks permission for both branches of a transaction before evaluating it
_NEVER = -1


class EtcdAccessError(ConnectionError):
    """etcd refused this coordinator for a reason only configuration can fix.

    A ConnectionError (an OSError) on purpose: the coordinator's `run` reports an
    OSError from start as "cannot start" with its message and exits with status 1.
    """


def explain(settings: EtcdSettings, err: EtcdRpcError) -> str | None:
    """What the operator should fix, if `err` is a configuration problem; None if it
    may be transient (etcd down, a timeout, an expired token)."""
    detail = err.detail
    if "too many operations in txn request" in detail:
        return (f"etcd's --max-txn-ops is below what vnfha needs: set --max-txn-ops="
                f"{TXN_OPS_NEEDED} (or more) on every etcd member and restart it "
                f"(docs/config.md, etcd settings)")
    if "request is too large" in detail:
        return ("a vnfha transaction is larger than etcd's --max-request-bytes (default "
                "1.5 MiB); raise it on every etcd member (docs/config.md, etcd settings)")
    user = settings.user
    where = f"store.etcd.auth (user {user!r}, password_file {settings.password_file})"
    if "authentication failed" in detail:
        return (f"etcd refused the password of user {user!r}: check {where} against the "
                f"etcd user (etcdctl user passwd {user})")
    if "authentication is not enabled" in detail:
        return (f"store.etcd.auth is set (user {user!r}) but etcd has authentication off: "
                f"enable it (etcdctl auth enable) or remove store.etcd.auth")
    if err.code == grpc.StatusCode.PERMISSION_DENIED:
        if user is None:
            who = ("no etcd user is configured (store.etcd.auth)"
                   + (" and the client certificate's common name is not an etcd user "
                      "allowed on it" if settings.cert_file else ""))
        else:
            who = f"etcd user {user!r}"
        return (f"etcd denied access to the prefix {settings.prefix}/ ({who}): grant the "
                f"user's role readwrite on it (etcdctl role grant-permission <role> "
                f"--prefix=true readwrite {settings.prefix}/)")
    if "user name is empty" in detail or "user name not found" in detail:
        return ("etcd has authentication on and no etcd user was given: set "
                "store.etcd.auth.user and password_file")
    if err.code != grpc.StatusCode.UNAVAILABLE:
        return None
    if settings.tls:
        if "CERTIFICATE_VERIFY_FAILED" in detail or "not in peer certificate" in detail:
            return (f"etcd's server certificate is not trusted: it must be signed by the CA "
                    f"in store.etcd.tls.ca_file ({settings.ca_file}) and name the host of "
                    f"the endpoint ({', '.join(settings.endpoints)}) in its "
                    f"subjectAltName; TLS said: {detail}")
        if any(s in detail for s in ("TSI_DATA_CORRUPTED", "Unwrap failed", "BAD_CERTIFICATE",
                                     "CERTIFICATE_REQUIRED", "UNKNOWN_CA")):
            given = (f"store.etcd.tls.cert_file ({settings.cert_file})" if settings.cert_file
                     else "no client certificate (store.etcd.tls.cert_file is not set)")
            return (f"etcd rejected the TLS client certificate: it requires one signed by a "
                    f"CA in its --trusted-ca-file, and we sent {given}; TLS said: {detail}")
        if "WRONG_VERSION_NUMBER" in detail or "handshake failed" in detail.lower():
            return (f"TLS handshake with etcd failed (is etcd serving TLS on "
                    f"{', '.join(settings.endpoints)}?); TLS said: {detail}")
    return None


def check_access(client: EtcdClient, settings: EtcdSettings, keys: Keys,
                 timeout: float) -> bool:
    """Log in, read the prefix and prove the user may write it, without writing.

    Returns True once all of that worked, False if etcd stayed unreachable for
    `timeout` s (the caller starts anyway), and raises EtcdAccessError on an error
    that only configuration can fix."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            client.range(keys.root, keys.root_end, timeout=max(0.2, left), count_only=True)
            client.txn([create_revision_is(keys.leader, _NEVER)], [put_op(keys.leader, b"")],
                       [], timeout=max(0.2, left))
            # etcd counts a transaction's operations before evaluating its compare: this
            # one never applies, and fails now if a command could fail later for its size
            client.txn([create_revision_is(keys.leader, _NEVER)],
                       [put_op(keys.probe(i), b"") for i in range(TXN_OPS_NEEDED)],
                       [], timeout=max(0.2, left))
            return True
        except EtcdRpcError as e:
            why = explain(settings, e)
            if why is not None:
                raise EtcdAccessError(why) from None
            if time.monotonic() + 0.1 >= deadline:
                return False
            time.sleep(0.1)
