"""A throwaway single-member etcd on loopback, for tests, benchmarks and the demo.

Runs Debian's `etcd` binary (package etcd-server, installed by scripts/setup.sh)
on two free loopback ports with its data in a folder the caller owns, so it can
be stopped and started again on the same data (an etcd restart). Never a mock:
if the binary is missing, `start` raises and the test that needed it fails.

Every etcd it starts has the settings docs/config.md asks operators for: a
`--max-txn-ops` that takes vnfha's largest transaction (a 1,024-group batch; etcd's
default of 128 would refuse it) and automatic compaction of the key history
(`--auto-compaction-mode periodic`), so a long test or benchmark keeps etcd small.

Optionally with client TLS (`EtcdTls`: a server certificate, `--client-cert-auth`
and the CA it trusts; see testpki.py) and with etcd's own users and roles
(`add_user`, `enable_auth`), set up through etcd's gRPC auth API with pyetcd's
generated stubs, as an operator would with `etcdctl user/role add; auth enable`.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from pyetcd import etcdrpc

from vnfha.coordinator.store.etcd_layout import TXN_OPS_NEEDED, prefix_end
from vnfha_lab.ports import free_port
from vnfha_lab.testpki import CertFiles, TestCA

#: how much key history the harness's etcd keeps (periodic compaction; docs/config.md)
COMPACTION_RETENTION = "1m"


@dataclass(frozen=True)
class EtcdTls:
    """Client-facing TLS for the test etcd: its certificate, the CA whose client
    certificates it accepts (`--client-cert-auth`), and the harness's own client cert."""

    ca_file: Path
    server: CertFiles
    client: CertFiles

    @classmethod
    def generate(cls, folder: Path) -> tuple[EtcdTls, TestCA]:
        """A fresh CA in `folder`, a server cert for 127.0.0.1 and an admin client cert;
        the CA is returned too, to issue more client certificates."""
        ca = TestCA(folder)
        return cls(ca.ca_file, ca.issue_server(), ca.issue_client("etcd-harness")), ca


class EtcdServer:
    def __init__(self, data_dir: Path, name: str = "etcd-test",
                 binary: str | None = None, tls: EtcdTls | None = None,
                 auth_token_ttl: int | None = None, max_txn_ops: int = TXN_OPS_NEEDED,
                 compaction_retention: str | None = COMPACTION_RETENTION) -> None:
        self.data_dir = Path(data_dir)
        self.name = name
        found = binary or shutil.which("etcd") or "/usr/bin/etcd"
        if not Path(found).exists():
            raise FileNotFoundError("etcd binary not found: run scripts/setup.sh "
                                    "(installs Debian's etcd-server)")
        self.binary = found
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls = tls
        #: seconds an idle simple auth token lives (etcd's default is 300)
        self.auth_token_ttl = auth_token_ttl
        self._root_password: str | None = None  # set once auth is enabled
        #: etcd --max-txn-ops (etcd's default is 128; vnfha needs TXN_OPS_NEEDED)
        self.max_txn_ops = max_txn_ops
        #: etcd --auto-compaction-retention in periodic mode; None: no compaction
        self.compaction_retention = compaction_retention

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def start(self, timeout: float = 20.0) -> None:
        """Start (or start again on the same data) and wait until it answers."""
        assert self.proc is None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        client = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        extra: list[str] = []
        if self.tls is not None:
            extra += ["--cert-file", str(self.tls.server.cert),
                      "--key-file", str(self.tls.server.key),
                      "--trusted-ca-file", str(self.tls.ca_file), "--client-cert-auth"]
        if self.auth_token_ttl is not None:
            extra += ["--auth-token-ttl", str(self.auth_token_ttl)]
        if self.compaction_retention is not None:
            extra += ["--auto-compaction-mode", "periodic",
                      "--auto-compaction-retention", self.compaction_retention]
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary, "--name", self.name, "--data-dir", str(self.data_dir / "etcd"),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"{self.name}={peer}",
                 "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn",
                 "--max-txn-ops", str(self.max_txn_ops), *extra],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}; see "
                                   f"{self.log_path}:\n{self.tail()}")
            if self.healthy():
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"etcd did not become healthy in {timeout} s; see {self.log_path}")

    def healthy(self) -> bool:
        ctx = None
        if self.tls is not None:
            ctx = ssl.create_default_context(cafile=str(self.tls.ca_file))
            ctx.load_cert_chain(str(self.tls.client.cert), str(self.tls.client.key))
        scheme = "https" if self.tls else "http"
        try:
            with urllib.request.urlopen(f"{scheme}://{self.endpoint}/health", timeout=0.5,
                                        context=ctx) as r:
                return b'"health":"true"' in r.read()
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL with kill=True) the whole process group and reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- etcd's users, roles and auth (the gRPC Auth API) -----------------------------------

    @contextmanager
    def _channel(self) -> Iterator[grpc.Channel]:
        if self.tls is None:
            ch = grpc.insecure_channel(self.endpoint)
        else:
            ch = grpc.secure_channel(self.endpoint, grpc.ssl_channel_credentials(
                self.tls.ca_file.read_bytes(), self.tls.client.key.read_bytes(),
                self.tls.client.cert.read_bytes()))
        try:
            yield ch
        finally:
            ch.close()

    def _root_metadata(self, ch: grpc.Channel) -> tuple[tuple[str, str], ...]:
        if self._root_password is None:
            return ()
        token = etcdrpc.AuthStub(ch).Authenticate(etcdrpc.AuthenticateRequest(
            name="root", password=self._root_password), timeout=5).token
        return (("token", token),)

    def add_user(self, name: str, password: str, readwrite: tuple[str, ...] = (),
                 read: tuple[str, ...] = ()) -> None:
        """User `name` with its own role `name`, allowed to read and write every key
        under each prefix in `readwrite`, and only to read those under `read`."""
        with self._channel() as ch:
            md = self._root_metadata(ch)
            auth = etcdrpc.AuthStub(ch)
            auth.RoleAdd(etcdrpc.AuthRoleAddRequest(name=name), timeout=5, metadata=md)
            grants = [(p, etcdrpc.Permission.READWRITE) for p in readwrite]
            grants += [(p, etcdrpc.Permission.READ) for p in read]
            for prefix, kind in grants:
                key = prefix.encode()
                auth.RoleGrantPermission(etcdrpc.AuthRoleGrantPermissionRequest(
                    name=name, perm=etcdrpc.Permission(permType=kind, key=key,
                                                       range_end=prefix_end(key))),
                    timeout=5, metadata=md)
            auth.UserAdd(etcdrpc.AuthUserAddRequest(name=name, password=password),
                         timeout=5, metadata=md)
            auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user=name, role=name),
                               timeout=5, metadata=md)

    def enable_auth(self, root_password: str) -> None:
        """Create `root` (role root) and turn authentication on: from now on every
        request needs a user's token (or, with client certs, the cert's CN as user)."""
        with self._channel() as ch:
            auth = etcdrpc.AuthStub(ch)
            auth.UserAdd(etcdrpc.AuthUserAddRequest(name="root", password=root_password),
                         timeout=5)
            auth.RoleAdd(etcdrpc.AuthRoleAddRequest(name="root"), timeout=5)
            auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"),
                               timeout=5)
            auth.AuthEnable(etcdrpc.AuthEnableRequest(), timeout=5)
        self._root_password = root_password

    def keys(self, prefix: str) -> list[bytes]:
        """Every key under `prefix` (as root when auth is on): what a test checks was
        or was not written."""
        key = prefix.encode()
        with self._channel() as ch:
            resp = etcdrpc.KVStub(ch).Range(
                etcdrpc.RangeRequest(key=key, range_end=prefix_end(key), keys_only=True),
                timeout=5, metadata=self._root_metadata(ch))
        return [kv.key for kv in resp.kvs]
