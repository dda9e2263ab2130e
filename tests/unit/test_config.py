"""Config loading: the shipped examples load, and every rule fails with its own message."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from vnfha.coordinator.config import (
    ConfigError,
    CoordinatorConfig,
    load_config,
    load_groups_file,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: base64 of 32 bytes: 44 characters, what `head -c 32 /dev/urandom | base64` prints
SECRET = "c2VjcmV0LXRoYXQtaXMtMzItYnl0ZXMtbG9uZyEhIQ=="

ONE: dict[str, Any] = {
    "node_id": "c1",
    "cluster": {"members": [{"id": "c1", "api": "127.0.0.1:7401", "raft": "127.0.0.1:7501"}]},
}
THREE: dict[str, Any] = {
    "node_id": "c2",
    "cluster": {
        "members": [{"id": f"c{i}", "api": f"127.0.0.1:740{i}", "raft": f"127.0.0.1:750{i}"}
                    for i in (1, 2, 3)],
        "secret": SECRET,
    },
    "insecure": True,  # these tests are about other settings; tls has its own below
}


def cfg(base: dict[str, Any] = ONE, **sections: Any) -> dict[str, Any]:
    """A deep copy of `base` with top-level keys replaced."""
    d = copy.deepcopy(base)
    d.update(copy.deepcopy(sections))
    return d


def error(data: Any, source: str = "coordinator.yaml", **kw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source=source, **kw)
    return str(info.value)


# --------------------------------------------------------------------------- examples


def test_single_example_loads_with_defaults_and_relative_data_dir() -> None:
    c = load_config(EXAMPLES / "single.yaml")
    assert c.node_id == "c1"
    assert c.store.backend == "raft"
    assert c.store.data_dir == (EXAMPLES / "data").resolve()
    assert c.raft_dir == c.store.data_dir / "c1"
    assert c.cluster.secret is None
    assert c.quorum == 1 and c.peers == ()
    assert c.self_member.api == "127.0.0.1:7401"
    assert c.groups_as_specs() == [{"name": "web", "mode": "active-standby",
                                    "vip": "198.18.0.100/24"}]


@pytest.mark.parametrize("node", ["c1", "c2", "c3"])
def test_cluster_examples_load_with_a_secret(tmp_path: Path, node: str) -> None:
    folder = tmp_path / "cluster"
    shutil.copytree(EXAMPLES / "cluster", folder, ignore=shutil.ignore_patterns("data"))
    (folder / "cluster.secret").write_text(f"  {SECRET}\n")
    c = load_config(folder / f"{node}.yaml")
    assert c.node_id == node
    assert c.cluster.secret == SECRET  # whitespace stripped
    assert c.cluster.secret_file == folder / "cluster.secret"
    assert c.store.data_dir == folder / "data"
    assert c.quorum == 2
    assert [p.id for p in c.peers] == [m for m in ("c1", "c2", "c3") if m != node]
    assert {g.name for g in c.groups} == {"web", "db", "lb"}
    assert c.tls is not None and c.tls.cert_file == folder / "certs" / f"coordinator-{node}.pem"
    assert not c.insecure


def test_cluster_example_without_secret_file_says_how_to_create_it(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    shutil.copytree(EXAMPLES / "cluster", folder, ignore=shutil.ignore_patterns("data",
                                                                               "cluster.secret"))
    with pytest.raises(ConfigError, match=r"c1\.yaml: cluster\.secret_file .* does not exist"
                                          r".*head -c 32 /dev/urandom"):
        load_config(folder / "c1.yaml")


def test_groups_example_loads() -> None:
    groups = load_groups_file(EXAMPLES / "groups.yaml")
    assert [g.name for g in groups] == ["web", "sip"]
    assert groups[1].mode == "active-active"


def test_shipped_examples_use_only_documentation_addresses() -> None:
    import ipaddress
    import re

    allowed = ipaddress.ip_network("198.18.0.0/15")
    for path in EXAMPLES.rglob("*.yaml"):
        for ip in re.findall(r"\b\d+\.\d+\.\d+\.\d+\b", path.read_text()):
            assert ip == "127.0.0.1" or ipaddress.ip_address(ip) in allowed, (path, ip)


# --------------------------------------------------------------------------- defaults, helpers


def test_defaults() -> None:
    c = parse_config(cfg())
    assert isinstance(c, CoordinatorConfig)
    assert c.store.backend == "raft"
    assert c.raft.election_timeout_min == 0.3 and c.raft.election_timeout_max == 0.6
    assert c.raft.heartbeat_interval == 0.05 and c.raft.compaction_min_entries == 10000
    assert (c.leases.ttl, c.leases.keepalive_interval, c.leases.stabilization) == (0.25, 0.06, 10.0)
    assert c.policy.decide_interval == 0.05
    assert c.groups == ()
    assert (c.logging.level, c.logging.format) == ("info", "text")


def test_three_members_helpers() -> None:
    c = parse_config(cfg(THREE))
    assert c.self_member.id == "c2"
    assert [p.id for p in c.peers] == ["c1", "c3"]
    assert c.quorum == 2
    assert c.cluster.secret == SECRET
    assert SECRET not in repr(c)  # the secret never lands in a log line


def test_quorum_sizes() -> None:
    for n, q in ((1, 1), (2, 2), (3, 2), (4, 3), (5, 3)):
        members = [{"id": f"c{i}", "api": f"127.0.0.1:74{i:02}", "raft": f"127.0.0.1:75{i:02}"}
                   for i in range(n)]
        c = parse_config({"node_id": "c0", "cluster": {"members": members, "secret": SECRET},
                          "insecure": True})
        assert c.quorum == q


def test_empty_sections_mean_defaults() -> None:
    c = parse_config(cfg(raft=None, leases=None, groups=None, logging=None, store=None))
    assert c.leases.ttl == 0.25 and c.groups == ()


def test_integers_are_accepted_as_seconds() -> None:
    c = parse_config(cfg(leases={"ttl": 3, "keepalive_interval": 1, "stabilization": 0},
                         policy={"decide_interval": 1}))
    assert c.leases.ttl == 3.0 and isinstance(c.leases.ttl, float)
    assert c.leases.stabilization == 0.0


def test_exactly_a_third_is_allowed_despite_float_rounding() -> None:
    c = parse_config(cfg(leases={"ttl": 0.6, "keepalive_interval": 0.2},
                         policy={"decide_interval": 0.2}))
    assert c.leases.keepalive_interval == 0.2


def test_config_is_frozen() -> None:
    c = parse_config(cfg())
    with pytest.raises(AttributeError):
        c.node_id = "x"  # type: ignore[misc]


def test_logging_level_is_case_insensitive() -> None:
    assert parse_config(cfg(logging={"level": "DEBUG"})).logging.level == "debug"


# --------------------------------------------------------------------------- timing rules


def test_keepalive_must_fit_three_times_in_ttl() -> None:
    msg = error(cfg(leases={"ttl": 0.6, "keepalive_interval": 0.5}))
    assert msg.startswith("coordinator.yaml: leases.keepalive_interval is 0.5 and leases.ttl "
                          "is 0.6, but the rule is keepalive_interval <= ttl/3")
    assert msg.endswith("set leases.keepalive_interval to 0.2 or less, or leases.ttl to 1.5 "
                        "or more")


def test_heartbeat_times_three_must_be_below_election_timeout_min() -> None:
    msg = error(cfg(raft={"heartbeat_interval": 0.1}))
    assert ("raft.heartbeat_interval is 0.1 and raft.election_timeout_min is 0.3 (the "
            "default: this file does not set it), but the rule is heartbeat_interval*3 < "
            "election_timeout_min") in msg


def test_election_timeout_min_below_max() -> None:
    msg = error(cfg(raft={"election_timeout_min": 0.6, "election_timeout_max": 0.6}))
    assert ("raft.election_timeout_min is 0.6 and raft.election_timeout_max is 0.6, but the "
            "rule is election_timeout_min < election_timeout_max") in msg


def test_decide_interval_within_a_third_of_ttl() -> None:
    msg = error(cfg(policy={"decide_interval": 0.5}, leases={"ttl": 0.6}))
    assert ("policy.decide_interval is 0.5 and leases.ttl is 0.6, but the rule is "
            "decide_interval <= ttl/3") in msg


@pytest.mark.parametrize("section,key", [
    ("raft", "election_timeout_min"), ("raft", "election_timeout_max"),
    ("raft", "heartbeat_interval"), ("leases", "ttl"), ("leases", "keepalive_interval"),
    ("policy", "decide_interval"),
])
@pytest.mark.parametrize("value", [0, -1.5])
def test_durations_must_be_positive(section: str, key: str, value: float) -> None:
    msg = error(cfg(**{section: {key: value}}))
    assert f"{section}.{key} ({value:g}) must be > 0 seconds" in msg


def test_stabilization_may_be_zero_not_negative() -> None:
    assert parse_config(cfg(leases={"stabilization": 0})).leases.stabilization == 0
    assert "leases.stabilization (-1) must be >= 0" in error(cfg(leases={"stabilization": -1}))


def test_compaction_min_entries_at_least_100() -> None:
    assert parse_config(cfg(raft={"compaction_min_entries": 100})).raft.compaction_min_entries \
        == 100
    assert "raft.compaction_min_entries (99) must be >= 100" in error(
        cfg(raft={"compaction_min_entries": 99}))


# --------------------------------------------------------------------------- types


def test_bool_is_not_a_number() -> None:
    assert "leases.ttl must be a number (seconds), got a boolean" in error(
        cfg(leases={"ttl": True}))


def test_string_is_not_a_number() -> None:
    assert "raft.heartbeat_interval must be a number (seconds), got a string" in error(
        cfg(raft={"heartbeat_interval": "50ms"}))


def test_compaction_needs_an_integer() -> None:
    assert "raft.compaction_min_entries must be an integer, got a number" in error(
        cfg(raft={"compaction_min_entries": 1000.0}))
    assert "must be an integer, got a boolean" in error(cfg(raft={"compaction_min_entries": True}))


def test_section_must_be_a_mapping() -> None:
    assert "coordinator.yaml: leases must be a mapping, got a list" in error(cfg(leases=[1]))


def test_top_level_must_be_a_mapping() -> None:
    assert "top level must be a mapping" in error([1, 2])
    assert "node_id is required" in error(None)


def test_node_id_must_be_a_string() -> None:
    assert "node_id must be a string, got an integer" in error(cfg(node_id=1))


# --------------------------------------------------------------------------- unknown keys


def test_unknown_top_level_key_with_hint() -> None:
    msg = error(cfg(leasess={"ttl": 1}))
    assert "unknown setting leasess (did you mean 'leases'?)" in msg


def test_unknown_nested_key_with_hint() -> None:
    msg = error(cfg(leases={"keepalive_intervall": 0.1}))
    assert "coordinator.yaml: unknown setting leases.keepalive_intervall " \
           "(did you mean 'keepalive_interval'?)" in msg


def test_unknown_key_in_member_and_group() -> None:
    d = cfg()
    d["cluster"]["members"][0]["rafts"] = "127.0.0.1:7502"
    assert "unknown setting cluster.members[0].rafts (did you mean 'raft'?)" in error(d)
    assert "unknown setting groups[0].vipp (did you mean 'vip'?)" in error(
        cfg(groups=[{"name": "web", "vipp": "198.18.0.1/24"}]))


def test_unknown_key_without_close_match_lists_allowed() -> None:
    msg = error(cfg(policy={"zzz": 1}))
    assert "unknown setting policy.zzz; allowed here: decide_interval" in msg


# --------------------------------------------------------------------------- structure


def test_node_id_required() -> None:
    d = cfg()
    del d["node_id"]
    assert error(d) == "coordinator.yaml: node_id is required"


def test_node_id_must_be_a_member() -> None:
    msg = error(cfg(node_id="c11"))
    assert "node_id (c11) must be one of cluster.members[].id (c1)" in msg
    assert "did you mean 'c1'?" in msg


def test_members_required_and_non_empty() -> None:
    assert "cluster.members is required" in error({"node_id": "c1"})
    assert "cluster.members must list at least one coordinator" in error(
        cfg(cluster={"members": []}))


def test_member_ids_unique() -> None:
    d = cfg(THREE)
    d["cluster"]["members"][2]["id"] = "c1"
    assert "cluster.members[2].id (c1) is a duplicate of cluster.members[0].id" in error(d)


def test_member_id_pattern() -> None:
    d = cfg()
    d["cluster"]["members"][0]["id"] = "-bad"
    assert "cluster.members[0].id ('-bad') must be 1-63 characters" in error(d)


@pytest.mark.parametrize("addr,why", [
    ("127.0.0.1", "expected 'host:port'"),
    ("127.0.0.1:0", "port '0' must be a number in 1..65535"),
    ("127.0.0.1:65536", "1..65535"),
    ("127.0.0.1:http", "1..65535"),
    (":7401", "expected 'host:port'"),
    ("::1:7401", "IPv6 host must be in brackets"),
    ("bad host:7401", "not a valid host name"),
])
def test_addresses_must_be_host_port(addr: str, why: str) -> None:
    d = cfg()
    d["cluster"]["members"][0]["api"] = addr
    msg = error(d)
    assert f"cluster.members[0].api ({addr!r})" in msg and why in msg


def test_ipv6_and_hostname_addresses_accepted() -> None:
    d = cfg()
    d["cluster"]["members"][0].update(api="[::1]:7401", raft="coord-1.example:7501")
    c = parse_config(d)
    assert c.self_member.api == "[::1]:7401"


def test_addresses_all_distinct() -> None:
    d = cfg(THREE)
    d["cluster"]["members"][1]["raft"] = "127.0.0.1:7401"
    assert ("cluster.members[1].raft (127.0.0.1:7401) is already used by "
            "cluster.members[0].api") in error(d)


def test_member_api_and_raft_required() -> None:
    d = cfg()
    del d["cluster"]["members"][0]["raft"]
    assert "cluster.members[0].raft is required" in error(d)


def test_memory_backend_single_member_may_omit_raft() -> None:
    d = cfg(store={"backend": "memory"})
    del d["cluster"]["members"][0]["raft"]
    c = parse_config(d)
    assert c.store.backend == "memory" and c.self_member.raft is None


def test_memory_backend_with_several_members_is_an_error() -> None:
    msg = error(cfg(THREE, store={"backend": "memory"}))
    assert "store.backend memory" in msg and "cluster.members has 3" in msg


def test_unknown_backend_with_hint() -> None:
    assert ("store.backend ('rafts') must be one of: raft, memory, etcd "
            "(did you mean 'raft'?)") in error(cfg(store={"backend": "rafts"}))


def test_secret_required_for_three_members() -> None:
    d = cfg(THREE)
    del d["cluster"]["secret"]
    msg = error(d)
    assert "cluster.secret_file is required with more than one member" in msg
    assert "head -c 32 /dev/urandom | base64" in msg


def test_secret_and_secret_file_are_exclusive(tmp_path: Path) -> None:
    d = cfg(THREE)
    d["cluster"]["secret_file"] = "s"
    assert "cluster.secret and cluster.secret_file are mutually exclusive" in error(
        d, base_dir=tmp_path)


def test_secret_file_must_not_be_empty(tmp_path: Path) -> None:
    (tmp_path / "s").write_text(" \n")
    d = cfg(THREE)
    d["cluster"] = {"members": d["cluster"]["members"], "secret_file": "s"}
    assert f"cluster.secret_file ({tmp_path / 's'}) is empty" in error(d, base_dir=tmp_path)


def test_inline_secret_must_be_a_non_empty_string() -> None:
    d = cfg(THREE)
    d["cluster"]["secret"] = 123
    assert "cluster.secret must be a string, got an integer" in error(d)
    d["cluster"]["secret"] = "  "
    assert "cluster.secret is empty" in error(d)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "vnfha"
    conf.mkdir(parents=True)
    (conf / "keys").mkdir()
    (conf / "keys" / "cluster.secret").write_text(SECRET + "\n")
    (conf / "coordinator.yaml").write_text(
        "node_id: c1\n"
        "cluster:\n"
        "  members:\n"
        "    - {id: c1, api: 127.0.0.1:7401, raft: 127.0.0.1:7501}\n"
        "    - {id: c2, api: 127.0.0.1:7402, raft: 127.0.0.1:7502}\n"
        "  secret_file: keys/cluster.secret\n"
        "insecure: true\n"
        "store:\n"
        "  data_dir: ../../var/data\n")
    c = load_config(conf / "coordinator.yaml")
    assert c.cluster.secret_file == conf / "keys" / "cluster.secret"
    assert c.cluster.secret == SECRET
    assert c.store.data_dir == tmp_path / "var" / "data"
    assert c.raft_dir == tmp_path / "var" / "data" / "c1"


def test_absolute_data_dir_kept(tmp_path: Path) -> None:
    c = parse_config(cfg(store={"data_dir": str(tmp_path / "d")}), base_dir="/nonexistent")
    assert c.store.data_dir == tmp_path / "d"


# --------------------------------------------------------------------------- groups


def test_groups_parsed_into_specs() -> None:
    c = parse_config(cfg(groups=[
        {"name": "web", "vip": "198.18.0.100/24"},
        {"name": "sip.v6", "mode": "active-active", "vip": "::1/128"},
        {"name": "db"},
    ]))
    assert c.groups_as_specs() == [
        {"name": "web", "mode": "active-standby", "vip": "198.18.0.100/24"},
        {"name": "sip.v6", "mode": "active-active", "vip": "::1/128"},
        {"name": "db", "mode": "active-standby", "vip": ""},
    ]


def test_group_names_unique() -> None:
    assert "groups[1].name (web) is a duplicate of groups[0].name" in error(
        cfg(groups=[{"name": "web"}, {"name": "web"}]))


@pytest.mark.parametrize("name", ["", "-web", "a" * 64, "we b", "web/1"])
def test_group_name_pattern(name: str) -> None:
    assert "groups[0].name" in error(cfg(groups=[{"name": name}]))


def test_group_name_required() -> None:
    assert "groups[0].name is required" in error(cfg(groups=[{"mode": "active-active"}]))


def test_group_mode_choices() -> None:
    msg = error(cfg(groups=[{"name": "web", "mode": "active-pasive"}]))
    assert "groups[0].mode ('active-pasive') must be one of: active-standby, active-active" in msg


def test_group_vip_must_be_an_interface() -> None:
    assert "groups[0].vip ('198.18.0.300/24') is not an IPv4/IPv6 interface" in error(
        cfg(groups=[{"name": "web", "vip": "198.18.0.300/24"}]))
    assert "groups[0].vip must be a string" in error(cfg(groups=[{"name": "web", "vip": 5}]))


def test_groups_must_be_a_list() -> None:
    assert "groups must be a list, got a mapping" in error(cfg(groups={"web": {}}))


def test_groups_file(tmp_path: Path) -> None:
    f = tmp_path / "g.yaml"
    f.write_text("groups:\n  - name: web\n    vip: 198.18.0.1/24\n  - name: web\n")
    with pytest.raises(ConfigError, match=r"g\.yaml: groups\[1\]\.name \(web\) is a duplicate"):
        load_groups_file(f)
    f.write_text("group:\n  - name: web\n")
    with pytest.raises(ConfigError, match=r"unknown setting group \(did you mean 'groups'\?\)"):
        load_groups_file(f)
    f.write_text("")
    with pytest.raises(ConfigError, match="file is empty"):
        load_groups_file(f)


# --------------------------------------------------------------------------- files


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("node_id: [c1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(f)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text("node_id: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)


def test_error_message_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "coordinator.yaml"
    f.write_text("node_id: c1\ncluster:\n  members:\n"
                 "    - {id: c1, api: 127.0.0.1:7401, raft: 127.0.0.1:7501}\n"
                 "leases:\n  ttl: 0.6\n  keepalive_interval: 0.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(info.value) == (
        f"{f}: leases.keepalive_interval is 0.5 and leases.ttl is 0.6, but the rule is "
        "keepalive_interval <= ttl/3 (a node must get three keepalives into one ttl, or one "
        "late packet loses it); set leases.keepalive_interval to 0.2 or less, or leases.ttl "
        "to 1.5 or more")


def test_timing_message_names_defaults_the_user_never_wrote() -> None:
    """Issue 15: `leases: {ttl: 0.1}` alone was refused for a keepalive_interval of 0.06 the
    user never wrote. The message must say it is the default, state the rule, suggest a fix."""
    msg = error(cfg(leases={"ttl": 0.1}))
    assert msg == ("coordinator.yaml: leases.keepalive_interval is 0.06 (the default: this "
                   "file does not set it) and leases.ttl is 0.1, but the rule is "
                   "keepalive_interval <= ttl/3 (a node must get three keepalives into one "
                   "ttl, or one late packet loses it); set leases.keepalive_interval to "
                   "0.0333333 or less, or leases.ttl to 0.18 or more")
    msg = error(cfg(leases={"ttl": 0.1, "keepalive_interval": 0.03}))
    assert msg.startswith("coordinator.yaml: policy.decide_interval is 0.05 (the default: "
                          "this file does not set it) and leases.ttl is 0.1, but the rule")



def test_short_secrets_are_refused_with_how_to_make_one(tmp_path: Path) -> None:
    d = cfg(THREE)
    d["cluster"]["secret"] = "x" * 31
    msg = error(d)
    assert "cluster.secret holds a 31-byte secret, at least 32 bytes" in msg
    assert "head -c 32 /dev/urandom | base64" in msg
    assert "x" * 31 not in msg  # never echo the secret
    (tmp_path / "s").write_text("a")
    d = cfg(THREE)
    d["cluster"] = {"members": d["cluster"]["members"], "secret_file": "s"}
    msg = error(d, base_dir=tmp_path)
    assert f"cluster.secret_file ({tmp_path / 's'}) holds a 1-byte secret" in msg


def test_secret_rule_accepts_generated_secrets() -> None:
    import base64
    import secrets

    for good in (base64.b64encode(secrets.token_bytes(32)).decode(),  # 44 chars
                 secrets.token_urlsafe(32),  # 43 chars (LabCluster, e2e)
                 "x" * 32):
        d = cfg(THREE)
        d["cluster"]["secret"] = good
        assert parse_config(d).cluster.secret == good


def test_previous_secret_file_for_rotation(tmp_path: Path) -> None:
    (tmp_path / "new").write_text(SECRET)
    (tmp_path / "old").write_text("o" * 40 + "\n")
    d = cfg(THREE)
    d["cluster"] = {"members": d["cluster"]["members"], "secret_file": "new",
                    "previous_secret_file": "old"}
    c = parse_config(d, base_dir=tmp_path)
    assert c.cluster.secret == SECRET and c.cluster.previous_secret == "o" * 40
    assert c.cluster.previous_secret_file == tmp_path / "old"
    assert "o" * 40 not in repr(c)
    (tmp_path / "old").write_text("short")
    assert "cluster.previous_secret_file" in error(d, base_dir=tmp_path)
    d["cluster"] = {"members": d["cluster"]["members"][:1], "previous_secret_file": "old"}
    d["node_id"] = "c1"
    assert "cluster.previous_secret_file needs cluster.secret_file" in error(
        d, base_dir=tmp_path)


# --------------------------------------------------------------------------- mTLS


def _three_without_tls() -> dict[str, Any]:
    d = cfg(THREE)
    del d["insecure"]
    return d


def test_several_members_need_tls_or_an_explicit_insecure() -> None:
    msg = error(_three_without_tls())
    assert "tls (ca_file, cert_file, key_file) is required with more than one member" in msg
    assert "insecure: true" in msg
    assert parse_config(cfg(THREE)).insecure is True


def test_one_member_may_run_without_tls() -> None:
    c = parse_config(cfg(ONE))
    assert c.tls is None and not c.insecure


def test_tls_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    d = _three_without_tls()
    d["tls"] = {"ca_file": "certs/ca.pem", "cert_file": "certs/c2.pem",
                "key_file": "/abs/c2-key.pem"}
    c = parse_config(d, base_dir=tmp_path)
    assert c.tls is not None
    assert c.tls.ca_file == tmp_path / "certs" / "ca.pem"
    assert c.tls.key_file == Path("/abs/c2-key.pem")


def test_tls_needs_all_three_files_and_no_other_keys() -> None:
    d = _three_without_tls()
    d["tls"] = {"ca_file": "ca.pem", "cert_file": "c.pem"}
    assert "tls needs ca_file, cert_file, key_file; missing key_file" in error(d)
    d["tls"] = {"ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k", "verify": 1}
    assert "verify" in error(d)


def test_insecure_must_be_a_boolean() -> None:
    assert "insecure must be true or false" in error(cfg(THREE, insecure="yes"))


# --------------------------------------------------------------------------- realtime


def test_realtime_defaults_to_auto_below_the_agents_priority_and_takes_on_off() -> None:
    c = parse_config(cfg())
    assert (c.realtime.mode, c.realtime.priority) == ("auto", 5)
    # below the agent's default: a busy coordinator never holds off an agent on its host
    from vnfha.agents.config import AgentConfig
    assert c.realtime.priority < AgentConfig.__dataclass_fields__["realtime_priority"].default
    c = parse_config(cfg(realtime={"mode": "off"}))
    assert c.realtime.mode == "off"
    c = parse_config(cfg(realtime={"mode": "on", "priority": 30}))
    assert (c.realtime.mode, c.realtime.priority) == ("on", 30)


@pytest.mark.parametrize("bad, says", [
    ({"mode": "always"}, r"realtime\.mode"),
    ({"priority": 0}, r"realtime\.priority \(0\) must be an integer between 1 and 99"),
    ({"priority": 100}, r"realtime\.priority \(100\)"),
    ({"priority": "high"}, r"realtime\.priority \('high'\)"),
    ({"priority": True}, r"realtime\.priority \(True\)"),
    ({"prio": 5}, r"realtime.*prio"),
])
def test_realtime_bad_values_say_what_is_wrong_in_one_line(bad: dict, says: str) -> None:
    msg = error(cfg(realtime=bad))
    assert "\n" not in msg
    assert re.search(says, msg), msg

def test_fastpath_defaults_and_bad_values():
    base = {"node_id": "c1", "cluster": {"members": [{"id": "c1", "api": "127.0.0.1:5"}]},
            "store": {"backend": "memory"}}
    cfg = parse_config(base)
    assert cfg.fastpath.enabled and cfg.fastpath.port is None  # UDP on the API's port
    assert parse_config({**base, "fastpath": {"enabled": False, "port": 0}}).fastpath.port == 0
    for bad, says in (({"port": 70000}, "fastpath.port"), ({"enabled": "yes"},
                      "fastpath.enabled"), ({"prot": 1}, "prot")):
        with pytest.raises(ConfigError, match=says):
            parse_config({**base, "fastpath": bad})
