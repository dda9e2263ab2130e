"""Input rules (coordinator/names.py) and where they hold: commands, the state machine's
request-id binding, the lease table's memory, the log formatter and the CLI tables."""

from __future__ import annotations

import json
import logging

import pytest
from cluster_builders import GROUP, build

from vnfha.coordinator import commands as C
from vnfha.coordinator import names
from vnfha.coordinator.cli import format_event, format_status
from vnfha.coordinator.leases import LeaseTable
from vnfha.coordinator.logs import JsonFormatter, TextFormatter
from vnfha.coordinator.model import Health
from vnfha.coordinator.state_machine import RID_REUSED, StateMachine, apply
from vnfha.v1 import admin_pb2, types_pb2

EVIL = "web\x1b[2J\x1b[31mPWNED\nfake line\r\x07\u202e"


# -- the rules ----------------------------------------------------------------------------

@pytest.mark.parametrize("good", ["vm1", "VM-1", "web.example.net", "a", "a_b", "x" * 63])
def test_names_accepted(good):
    assert names.check_name("node", good) == good


@pytest.mark.parametrize("bad", ["", "-x", ".x", "x" * 64, "a b", "a/b", "a;rm -rf /", EVIL,
                                 "é", "a\n", 5, None])
def test_names_refused_with_one_safe_line(bad):
    with pytest.raises(names.InvalidValue) as e:
        names.check_name("group", bad)
    msg = str(e.value)
    assert "\n" not in msg and "\x1b" not in msg and len(msg) < 300


@pytest.mark.parametrize("good", ["198.18.0.100/24", "2001:db8::10/64", "::1/128", "",
                                  " 198.18.0.1/32 "])
def test_vips_accepted(good):
    assert names.check_vip(good) == good.strip()


@pytest.mark.parametrize("bad", ["not-an-ip; rm -rf /", "198.18.0.100", "198.18.0.300/24",
                                 "198.18.0.1/33", "0.0.0.0/0", "224.0.0.1/32", "x/24",
                                 "198.18.0.1/24\n/8", 7])
def test_vips_refused(bad):
    with pytest.raises(names.InvalidValue):
        names.check_vip(bad)


def test_request_ids_priorities_addresses_text():
    assert names.check_request_id("pool-applied/g/n1/3") == "pool-applied/g/n1/3"
    for bad in ("", "a b", "x" * 129, "\x1b[0m", "/lead"):
        with pytest.raises(names.InvalidValue):
            names.check_request_id(bad)
    for bad in (-1, 1001, True, "5"):
        with pytest.raises(names.InvalidValue):
            names.check_priority(bad)
    assert names.check_address("198.18.0.1") and names.check_address("vm1.example.net")
    with pytest.raises(names.InvalidValue):
        names.check_address("198.18.0.1; rm -rf /")
    with pytest.raises(names.InvalidValue):
        names.check_text("reason", "r" * (names.TEXT_MAX + 1))


# -- rendering ----------------------------------------------------------------------------

def test_safe_escapes_control_characters_and_bounds_length():
    shown = names.safe(EVIL)
    assert not any(ord(c) < 0x20 or c == "\u202e" for c in shown)
    assert "\\x1b[2J" in shown and "\\n" in shown and "\\u202e" in shown
    long = names.safe("a" * 10_000, 50)
    assert len(long) < 80 and long.endswith("(10000 chars)")
    # A backslash is doubled, so an escaped sequence is never mistaken for a real one.
    assert names.safe("\\x1b") == "\\\\x1b"


def _record(**extra) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": "vnfha.test", "levelname": "INFO", "levelno": 20,
                                 "msg": "group %s applied", "args": (EVIL,)})
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_log_lines_built_from_evil_values_stay_one_safe_line():
    rec = _record(group=EVIL, members=[EVIL, "m2"], event={"reason": EVIL * 100, "epoch": 3})
    text = TextFormatter().format(rec)
    assert "\n" not in text and "\x1b" not in text and "\r" not in text
    assert len(text) < 3000  # bounded, although the reason alone is 2,800 characters
    doc = json.loads(JsonFormatter().format(rec))
    assert doc["epoch"] == 3  # numbers stay numbers
    for value in (doc["msg"], doc["group"], doc["reason"], *doc["members"]):
        assert not any(ord(c) < 0x20 for c in value) and "\u202e" not in value
    assert len(doc["reason"]) < 500


def test_status_table_and_events_escape_server_strings():
    group = admin_pb2.GroupStatus(
        name=EVIL, mode=types_pb2.GROUP_MODE_ACTIVE_STANDBY, epoch=1, active=EVIL,
        members=[admin_pb2.MemberStatus(name=EVIL, node="vm1\x1b]0;title\x07",
                                        role=types_pb2.ROLE_ACTIVE)])
    status = admin_pb2.GetStatusResponse(
        coordinator=admin_pb2.CoordinatorInfo(node_id="c1\x1b[H", leader_id="c1"),
        groups=[group])
    out = format_status(status)
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert len(out.splitlines()) == 3  # header, column titles, one member row
    line = format_event(admin_pb2.Event(seq=1, kind="promoted", group=EVIL, member=EVIL,
                                        reason=EVIL))
    assert "\n" not in line and "\x1b" not in line


# -- commands and the state machine ----------------------------------------------------------

def test_apply_refuses_bad_values_in_new_commands():
    st = build()
    for cmd in (C.apply_groups([{"name": "g2", "vip": "not-an-ip; rm -rf /"}]),
                C.apply_groups([{"name": EVIL, "vip": ""}]),
                C.register_node("vm\n9", "198.18.1.9", []),
                C.register_node("n9", "198.18.1.9", [{"group": GROUP, "member": "z",
                                                       "priority": 10**9}]),
                C.register_node("n9", "198.18.1.9", [{"group": GROUP, "member": "a\x1b"}]),
                {**C.set_health(GROUP, "a", Health.UNHEALTHY), "reason": "r" * 5000},
                C.switchover(GROUP, None, rid="bad rid")):
        st2, r = apply(st, cmd)
        assert r["ok"] is False and r["error"] == "invalid", (cmd, r)
        assert st2 is st


def test_builders_cut_long_free_text_so_decisions_are_never_refused_for_it():
    """A leader's pool_exclude carries the LB's check detail in its reason: a long one
    must not get the exclusion refused."""
    st = build()
    cmd = C.set_health(GROUP, "a", Health.UNHEALTHY, reason="lb says: " + "x" * 5000)
    assert len(cmd["reason"]) == names.TEXT_MAX
    _, r = apply(st, cmd)
    assert r["ok"] is True


def test_rules_1_commands_replay_as_they_were_accepted():
    """A command already in a log (no `v`) is checked by the rules it was accepted
    under: replaying an old log gives the state the other replicas have."""
    st = build()
    old = C.apply_groups([{"name": "legacy group", "vip": "x"}])
    del old["v"]
    st2, r = apply(st, old)
    assert r["ok"] and "legacy group" in st2.groups


def test_same_request_id_with_another_command_is_refused():
    sm = StateMachine()
    for cmd in (C.apply_groups([{"name": GROUP, "vip": "198.18.0.10/24"}]),
                C.register_node("n1", "198.18.1.1", [{"group": GROUP, "member": "a"}]),
                C.register_node("n2", "198.18.1.2", [{"group": GROUP, "member": "b"}])):
        assert sm.apply(cmd)["ok"]
    first = C.set_maintenance("n1", True, rid="req-1")
    assert sm.apply(first) == {"ok": True, "changed": True}
    # A retry (new proposer clock) is the same request: the recorded result.
    retry = {**first, "at": first["at"] + 5}
    assert sm.apply(retry) == {"ok": True, "changed": True, "duplicate": True}
    rev = sm.state.revision
    other = C.set_maintenance("n2", True, rid="req-1")
    r = sm.apply(other)
    assert r["ok"] is False and r["error"] == RID_REUSED
    assert sm.state.revision == rev and not sm.state.nodes["n2"].maintenance
    # The refusal did not replace the record: the first command still gets its result.
    assert sm.apply(retry)["duplicate"] is True
    # Digests survive a snapshot.
    sm2 = StateMachine()
    sm2.restore(json.loads(json.dumps(sm.snapshot())))
    assert sm2.apply(other)["error"] == RID_REUSED


def test_records_from_before_the_binding_still_answer_retries():
    sm = StateMachine()
    sm.restore({"state": {}, "recent": [("req-old", {"ok": True, "changed": True})]})
    r = sm.apply(C.set_maintenance("n1", True, rid="req-old"))
    assert r == {"ok": True, "changed": True, "duplicate": True}


# -- lease table ----------------------------------------------------------------------------

def test_lease_ages_of_unknown_names_leave_no_entries():
    registered = {"vm1": object(), "vm2": object()}
    t = LeaseTable(started_at=0.0, ttl=1.0, known_nodes=lambda: registered)
    t.ages(["vm1", "vm2"], 1.0)
    before = t.tracked()
    for call in range(4):
        ages = t.ages([f"ghost-{call}-{i}" for i in range(2_500)], 2.0 + call)
        assert all(a == 0.0 for a in ages.values())  # never heard of: as young as can be
    assert t.tracked() == before == 2
    # Registered nodes keep their "first asked" time (a new node gets one TTL).
    assert t.ages(["vm1"], 3.0) == {"vm1": 2.0}
