"""A 3-coordinator cluster on loopback, as separate `vnfha coordinator` processes.

Each coordinator runs in its own session (process group) so a test can kill
it with SIGKILL like an OOM killer would, and the fixture always reaps every
process it started, even when the test fails.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import yaml
from support import free_port, wait_for

from vnfha.coordinator.security.tls import TlsFiles, channel_credentials
from vnfha.v1 import admin_pb2, admin_pb2_grpc
from vnfha_lab.testpki import LabPki

VNFHA = [sys.executable, "-m", "vnfha.coordinator.cli"]


class CoordinatorCluster:
    def __init__(self, root: Path, size: int = 3, ttl: float = 0.6, interval: float = 0.1,
                 groups: list[dict] | None = None, stabilization: float = 2.0,
                 backend: str = "raft", etcd_endpoint: str | None = None,
                 session_ttl: int = 2, etcd_options: dict | None = None,
                 tls: bool = True) -> None:
        self.root = root
        # mTLS on, as in production: a throwaway CA; `tls_for` gives a caller's files.
        self.pki = LabPki(root / "pki") if tls else None
        self.ttl = ttl
        self.backend = backend
        self.ids = [f"c{i + 1}" for i in range(size)]
        self.api = {cid: f"127.0.0.1:{free_port()}" for cid in self.ids}
        raft = {cid: f"127.0.0.1:{free_port()}" for cid in self.ids}
        secret = root / "cluster.secret"
        secret.write_text(secrets.token_urlsafe(32))
        self.procs: dict[str, subprocess.Popen] = {}
        self.configs: dict[str, Path] = {}
        if backend == "etcd":
            assert etcd_endpoint is not None
            # Each cluster gets its own prefix, so clusters can share one etcd.
            cluster: dict = {"members": [{"id": c, "api": self.api[c]} for c in self.ids]}
            store: dict = {"backend": "etcd", "etcd": {
                "endpoints": [etcd_endpoint], "prefix": f"/e2e/{root.name}",
                "session_ttl": session_ttl, **(etcd_options or {})}}
        else:
            cluster = {"members": [{"id": c, "api": self.api[c], "raft": raft[c]}
                                   for c in self.ids], "secret_file": str(secret)}
            store = {"backend": "raft", "data_dir": str(root / "data")}
        for cid in self.ids:
            cfg = {
                "node_id": cid,
                "cluster": cluster,
                "store": store,
                "leases": {"ttl": ttl, "keepalive_interval": interval,
                           "stabilization": stabilization},
                "groups": groups or [{"name": "web", "vip": "198.18.0.100/24"}],
                "logging": {"level": "info", "format": "json"},
                **({"tls": self.pki.section(f"coordinator/{cid}")} if self.pki
                   else {"insecure": True}),
            }
            path = root / f"{cid}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            self.configs[cid] = path

    @property
    def endpoints(self) -> list[str]:
        return [self.api[c] for c in self.ids]

    def start(self, cid: str) -> None:
        log = open(self.root / f"{cid}.log", "ab")
        self.procs[cid] = subprocess.Popen(
            [*VNFHA, "coordinator", "--config", str(self.configs[cid])],
            stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()

    def start_all(self) -> None:
        for cid in self.ids:
            self.start(cid)
        leader = wait_for(self.leader, 20, what="a raft leader")
        wait_for(lambda: self.group(leader) is not None, 10, what="declared groups applied")

    def signal(self, cid: str, sig: signal.Signals) -> None:
        """Send `sig` (SIGSTOP/SIGCONT: a frozen process) to the coordinator's group."""
        os.killpg(self.procs[cid].pid, sig)

    def kill(self, cid: str, group: bool = True) -> None:
        """SIGKILL the coordinator (its whole process group by default)."""
        proc = self.procs.pop(cid)
        try:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for cid in list(self.procs):
            self.kill(cid)

    def tls_for(self, identity: str) -> TlsFiles | None:
        """The certificate files of `identity` ("node/vm1", "admin/e2e"); None without TLS."""
        return self.pki.files(identity) if self.pki else None

    def tls_args(self, identity: str = "admin/e2e") -> list[str]:
        """`vnfha` CLI arguments (--cacert/--cert/--key) for `identity`."""
        return self.pki.args(identity) if self.pki else []

    def channel(self, cid: str, identity: str = "admin/e2e") -> grpc.Channel:
        files = self.tls_for(identity)
        if files is None:
            return grpc.insecure_channel(self.api[cid])
        return grpc.secure_channel(self.api[cid], channel_credentials(files))

    def status(self, cid: str, timeout: float = 1.0) -> admin_pb2.GetStatusResponse:
        with self.channel(cid) as ch:
            return admin_pb2_grpc.AdminServiceStub(ch).GetStatus(
                admin_pb2.GetStatusRequest(), timeout=timeout)

    def leader(self) -> str | None:
        """The id of the coordinator that says it leads and is running, if any."""
        for cid in list(self.procs):
            try:
                st = self.status(cid, timeout=0.5)
            except grpc.RpcError:
                continue
            if st.coordinator.is_leader:
                return cid
        return None

    def admin(self, cid: str) -> tuple[grpc.Channel, admin_pb2_grpc.AdminServiceStub]:
        ch = self.channel(cid)
        return ch, admin_pb2_grpc.AdminServiceStub(ch)

    def group(self, cid: str, name: str = "web") -> admin_pb2.GroupStatus | None:
        for g in self.status(cid).groups:
            if g.name == name:
                return g
        return None

    def logs(self) -> str:
        out = []
        for cid in self.ids:
            p = self.root / f"{cid}.log"
            if p.exists():
                out.append(f"--- {cid}\n" + p.read_text(errors="replace")[-4000:])
        return "\n".join(out)
