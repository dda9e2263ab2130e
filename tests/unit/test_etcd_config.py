"""store.etcd config: the examples load, and every rule fails with its own message."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from vnfha.coordinator.config import ConfigError, load_config, parse_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "etcd"

BASE: dict[str, Any] = {
    "node_id": "c2",
    "cluster": {"members": [{"id": f"c{i}", "api": f"127.0.0.1:741{i}"} for i in (1, 2, 3)]},
    "store": {"backend": "etcd", "etcd": {"endpoints": ["127.0.0.1:2379"]}},
    "insecure": True,  # the vnfha API's own mTLS is tested in test_config.py
}


def cfg(**etcd: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    d["store"]["etcd"].update(etcd)
    return d


def error(data: Any, base_dir: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="c.yaml", base_dir=base_dir)
    return str(info.value)


@pytest.mark.parametrize("node", ["c1", "c2", "c3"])
def test_examples_load(node: str) -> None:
    c = load_config(EXAMPLES / f"{node}.yaml")
    assert c.node_id == node and c.store.backend == "etcd"
    assert c.store.etcd is not None
    assert c.store.etcd.endpoints == ("127.0.0.1:2379",)
    assert c.store.etcd.prefix == "/vnfha/example" and c.store.etcd.session_ttl == 3
    assert not c.store.etcd.tls and c.store.etcd.user is None
    assert c.cluster.secret is None and c.quorum == 2
    assert all(m.raft is None for m in c.cluster.members)


def test_defaults_and_no_secret_needed_with_several_members() -> None:
    c = parse_config(BASE)
    assert c.store.etcd is not None
    assert c.store.etcd.prefix == "/vnfha" and c.store.etcd.session_ttl == 3
    assert len(c.cluster.members) == 3 and c.cluster.secret is None


def test_tls_and_auth_resolve_relative_paths_and_read_the_password(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    (tmp_path / "pw").write_text("  hunter2\n")
    c = parse_config(cfg(tls={"ca_file": "ca.pem", "cert_file": "cert.pem",
                              "key_file": "key.pem"},
                         auth={"user": "vnfha", "password_file": "pw"}),
                     base_dir=tmp_path)
    e = c.store.etcd
    assert e is not None and e.tls
    assert (e.ca_file, e.cert_file, e.key_file) == (tmp_path / "ca.pem", tmp_path / "cert.pem",
                                                    tmp_path / "key.pem")
    assert e.user == "vnfha" and e.password == "hunter2"
    assert "hunter2" not in repr(c)  # the password stays out of logs and tracebacks


@pytest.mark.parametrize(("etcd", "message"), [
    ({"endpoints": None}, "store.etcd.endpoints is required"),
    ({"endpoints": []}, "store.etcd.endpoints must be a non-empty list"),
    ({"endpoints": ["http://127.0.0.1:2379"]}, "must be host:port without a scheme"),
    ({"endpoints": ["127.0.0.1"]}, "store.etcd.endpoints[0] ('127.0.0.1'): expected 'host:port'"),
    ({"endpoints": ["127.0.0.1:2379", "127.0.0.1:2379"]},
     "store.etcd.endpoints[1] (127.0.0.1:2379) is a duplicate of store.etcd.endpoints[0]"),
    ({"prefix": "vnfha"}, "store.etcd.prefix ('vnfha') must look like /vnfha"),
    ({"prefix": "/vnfha/"}, "must look like /vnfha"),
    ({"prefix": "/a b"}, "must look like /vnfha"),
    ({"session_ttl": 1}, "store.etcd.session_ttl (1) must be 2..60 seconds"),
    ({"session_ttl": 2.5}, "store.etcd.session_ttl must be an integer"),
    ({"session_ttl": True}, "store.etcd.session_ttl must be an integer"),
    ({"tls": {"cert_file": "x"}}, "store.etcd.tls.ca_file is required"),
    ({"tls": {"ca_file": "/nonexistent/ca.pem"}},
     "store.etcd.tls.ca_file (/nonexistent/ca.pem) does not exist"),
    ({"tls": {"ca_fil": "x"}}, "unknown setting store.etcd.tls.ca_fil (did you mean 'ca_file'?)"),
    ({"auth": {"user": "vnfha"}}, "store.etcd.auth.password_file is required"),
    ({"auth": {"user": "", "password_file": "x"}}, "store.etcd.auth.user must be a non-empty"),
    ({"auth": {"user": "u", "password": "p"}}, "unknown setting store.etcd.auth.password"),
    ({"endpoint": ["127.0.0.1:2379"]}, "unknown setting store.etcd.endpoint"),
])
def test_invalid_settings_are_named(etcd: dict[str, Any], message: str) -> None:
    d = cfg(**etcd)
    d["store"]["etcd"] = {k: v for k, v in d["store"]["etcd"].items() if v is not None}
    assert message in error(d)


def test_cert_without_key_and_empty_password_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "pw").write_text("\n")
    assert "cert_file and store.etcd.tls.key_file go together" in error(
        cfg(tls={"ca_file": "ca.pem", "cert_file": "cert.pem"}), base_dir=tmp_path)
    assert f"store.etcd.auth.password_file ({tmp_path / 'pw'}) is empty" in error(
        cfg(auth={"user": "u", "password_file": "pw"}), base_dir=tmp_path)


def test_backend_and_section_must_agree() -> None:
    d = copy.deepcopy(BASE)
    del d["store"]["etcd"]
    assert "store.etcd.endpoints is required with store.backend etcd" in error(d)
    d = copy.deepcopy(BASE)
    d["store"]["backend"] = "raft"
    assert "store.etcd is only used with store.backend etcd (backend is raft)" in error(d)
    d = copy.deepcopy(BASE)
    d["cluster"]["members"][0]["raft"] = "127.0.0.1:7501"
    assert "cluster.members[0].raft is not used with store.backend etcd" in error(d)
