"""The etcd store against an etcd with client TLS, --client-cert-auth and auth on.

One real etcd for the module: TLS with a throwaway CA (lab/vnfha_lab/testpki.py),
client certificates required, users and roles set up through etcd's gRPC Auth
API, and --auth-token-ttl 1 so tokens expire between a coordinator's writes.

* three `vnfha coordinator` processes logged in as a user whose role covers only
  /vnfha/: commands commit, leadership moves when the leader dies, and every
  token etcd forgot is replaced by logging in again, never seen as an outage;
* each way to get it wrong (password, a role without the prefix or read-only on
  it, a server CA we do not trust, no client certificate) stops `vnfha coordinator`
  at start with a message naming what to fix, and writes nothing;
* but etcd merely down at start is waited for, not treated as misconfiguration.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cluster import VNFHA, CoordinatorCluster
from support import free_port, wait_for
from test_cluster import INTERVAL, TTL, Roles, epoch_and_active

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.v1 import admin_pb2
from vnfha_lab.etcdserver import EtcdServer, EtcdTls
from vnfha_lab.testpki import CertFiles, TestCA

pytestmark = pytest.mark.slow
_files = itertools.count(1)
TOKEN_TTL = 1  # seconds an unused etcd auth token lives
SESSION_TTL = 2
#: etcd drops expired tokens once a second, so a token is surely gone after this idle time
IDLE = 2 * TOKEN_TTL + 1


@dataclass
class Secure:
    etcd: EtcdServer
    root: Path
    tls: EtcdTls
    client: CertFiles  # the coordinators' client certificate, from the trusted CA
    stranger_ca: Path  # a CA that did not sign etcd's certificate

    def password_file(self, name: str, password: str) -> Path:
        p = self.root / f"{name}-{next(_files)}.password"
        p.write_text(password + "\n")
        return p

    def options(self, user: str = "vnfha", password: str = "vnfha-pw",
                ca_file: Path | None = None, client_cert: bool = True) -> dict:
        """store.etcd.tls/auth as an operator would write them."""
        tls: dict = {"ca_file": str(ca_file or self.tls.ca_file)}
        if client_cert:
            tls |= {"cert_file": str(self.client.cert), "key_file": str(self.client.key)}
        return {"tls": tls, "auth": {"user": user,
                                     "password_file": str(self.password_file(user, password))}}


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    root = tmp_path_factory.mktemp("etcd-secure")
    tls, ca = EtcdTls.generate(root / "pki")
    client = ca.issue_client("vnfha-coordinator")
    stranger = TestCA(root / "stranger", "stranger-ca")
    etcd = EtcdServer(root / "data", tls=tls, auth_token_ttl=TOKEN_TTL)
    etcd.start()
    try:
        etcd.add_user("vnfha", "vnfha-pw", readwrite=("/vnfha/",))
        etcd.add_user("reader", "reader-pw", read=("/vnfha/",))  # may read, not write
        etcd.add_user("other", "other-pw", readwrite=("/other/",))  # another prefix only
        etcd.enable_auth("root-pw")
        yield Secure(etcd, root, tls, client, stranger.ca_file)
    finally:
        etcd.stop()


# -- the right credentials ----------------------------------------------------------------


def test_coordinators_over_tls_and_auth_commit_lead_and_log_in_again(secure, tmp_path):
    prefix_dir = tmp_path / "ok"
    prefix_dir.mkdir()
    cluster = CoordinatorCluster(prefix_dir, ttl=TTL, interval=INTERVAL, backend="etcd",
                                 etcd_endpoint=secure.etcd.endpoint, session_ttl=SESSION_TTL,
                                 etcd_options=secure.options())
    # CoordinatorCluster puts each cluster under /e2e/<dir>: move it under /vnfha/.
    for path in cluster.configs.values():
        cfg = yaml.safe_load(path.read_text())
        cfg["store"]["etcd"]["prefix"] = "/vnfha/ok"
        path.write_text(yaml.safe_dump(cfg))
    roles = Roles()
    sessions: list[AgentSession] = []
    try:
        cluster.start_all()
        for node, member, prio in (("vm1", "m1", 200), ("vm2", "m2", 100)):
            s = AgentSession(node, [HostedMember("web", member, prio)], cluster.endpoints,
                             ttl=TTL, interval=INTERVAL, on_role=roles.cb,
                             tls=cluster.tls_for(f"node/{node}"))
            s.start()
            sessions.append(s)
        leader = wait_for(cluster.leader, 10, what="a leader")
        wait_for(lambda: (g := cluster.group(leader)) is not None and g.active == "m1"
                 and len(g.members) == 2 and all(m.health == 2 for m in g.members),
                 10, what="m1 active, both members healthy")
        wait_for(lambda: roles.holders() == {"m1"}, 5, what="m1's agent acting")

        # Idle past the token TTL: etcd forgets the leader's token; the command commits.
        time.sleep(IDLE)
        ch, admin = cluster.admin(leader)
        with ch:
            assert admin.Switchover(admin_pb2.SwitchoverRequest(group="web", to_member="m2"),
                                    timeout=10).completed
        wait_for(lambda: roles.holders() == {"m2"}, 5, what="m2 acting")

        # The leader dies; a follower whose token expired long ago logs in, is elected
        # and commits.
        cluster.kill(leader)
        new = wait_for(cluster.leader, SESSION_TTL + 8, what="a new leader")
        assert new != leader
        time.sleep(IDLE)
        ch, admin = cluster.admin(new)
        with ch:
            resp = wait_for(lambda: admin.Switchover(admin_pb2.SwitchoverRequest(
                group="web", to_member="m1"), timeout=5), 10, what="a switchover to commit")
        assert resp.completed
        wait_for(lambda: roles.holders() == {"m1"}, 5, what="m1 acting again")
        assert epoch_and_active(cluster, new) == (5, "m1")
        assert roles.max_holders() == 1

        logs = {cid: (prefix_dir / f"{cid}.log").read_text() for cid in cluster.ids}
        # Expired tokens were replaced transparently: logged as a re-login, never as
        # etcd being unreachable.
        assert "logging in again" in logs[leader] and "logging in again" in logs[new], logs
        assert not any("etcd unreachable" in text for text in logs.values()), logs
        # Everything vnfha wrote is under its prefix, and it wrote the state there.
        keys = secure.etcd.keys("/vnfha/ok/")
        assert b"/vnfha/ok/state" in keys
    except BaseException:
        print(cluster.logs(), "\n--- etcd\n", secure.etcd.tail(), file=sys.stderr)
        raise
    finally:
        for s in sessions:
            s.stop()
        cluster.stop_all()


# -- the wrong ones -----------------------------------------------------------------------


def _config(tmp: Path, name: str, endpoint: str, options: dict) -> Path:
    api = f"127.0.0.1:{free_port()}"
    cfg = {"node_id": "c1", "cluster": {"members": [{"id": "c1", "api": api}]},
           "store": {"backend": "etcd", "etcd": {"endpoints": [endpoint],
                                                 "prefix": f"/vnfha/{name}", **options}},
           "groups": [{"name": "web", "vip": "198.18.0.100/24"}],
           "logging": {"level": "info", "format": "text"}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


BAD = {
    # name: (how the config is wrong, what the operator must read)
    "wrongpw": (lambda s: s.options(password="not-the-password"),
                "etcd refused the password of user 'vnfha'"),
    "noperm": (lambda s: s.options(user="other", password="other-pw"),
               "etcd denied access to the prefix /vnfha/noperm/ (etcd user 'other')"),
    "readonly": (lambda s: s.options(user="reader", password="reader-pw"),
                 "etcd denied access to the prefix /vnfha/readonly/ (etcd user 'reader')"),
    "untrusted": (lambda s: s.options(ca_file=s.stranger_ca),
                  "etcd's server certificate is not trusted"),
    "nocert": (lambda s: s.options(client_cert=False),
               "etcd rejected the TLS client certificate"),
}


def test_wrong_credentials_stop_the_coordinator_at_start_and_write_nothing(secure, tmp_path):
    procs = {}
    try:
        for name, (options, _) in BAD.items():
            cfg = _config(tmp_path, name, secure.etcd.endpoint, options(secure))
            procs[name] = subprocess.Popen([*VNFHA, "coordinator", "--config", str(cfg)],
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)
        outputs = {}
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=20)
            outputs[name] = (proc.returncode, out.decode(errors="replace"))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
    for name, (_, message) in BAD.items():
        code, out = outputs[name]
        assert code == 1, (name, out)
        assert "cannot start" in out and message in out, (name, out)
        assert "coordinator serving" not in out, (name, out)
        assert secure.etcd.keys(f"/vnfha/{name}/") == [], name
    # The messages name the setting to change.
    assert "store.etcd.auth" in outputs["wrongpw"][1]
    assert "grant-permission" in outputs["noperm"][1]
    assert "store.etcd.tls.ca_file" in outputs["untrusted"][1]
    assert "store.etcd.tls.cert_file is not set" in outputs["nocert"][1]


def test_etcd_down_at_start_is_waited_for_not_refused(secure, tmp_path):
    """Nothing listening is not a configuration error: the store starts after its bounded
    wait, unreachable and not leading (as status says), instead of refusing to run."""
    from vnfha.coordinator.store.etcd import START_WAIT, EtcdStore
    from vnfha.coordinator.store.etcd_config import EtcdSettings

    settings = EtcdSettings(endpoints=(f"127.0.0.1:{free_port()}",), prefix="/vnfha/down",
                            ca_file=secure.tls.ca_file, cert_file=secure.client.cert,
                            key_file=secure.client.key, user="vnfha",
                            password="vnfha-pw")
    store = EtcdStore("c1", settings)
    began = time.monotonic()
    store.start()
    try:
        took = time.monotonic() - began
        assert took < START_WAIT + 2
        assert not store.store_reachable() and not store.is_leader()
    finally:
        store.stop()


def test_auth_configured_but_off_in_etcd_stops_the_coordinator(etcd_server, tmp_path):
    """store.etcd.auth against an etcd with authentication off: refused at start with
    the two ways out, rather than running with a login that does nothing."""
    pw = tmp_path / "pw"
    pw.write_text("whatever\n")
    cfg = _config(tmp_path, "authoff", etcd_server.endpoint,
                  {"auth": {"user": "vnfha", "password_file": str(pw)}})
    proc = subprocess.run([*VNFHA, "coordinator", "--config", str(cfg)], capture_output=True,
                          text=True, timeout=20, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "cannot start" in out and "etcd has authentication off" in out, out
    assert "etcdctl auth enable" in out and "remove store.etcd.auth" in out, out
