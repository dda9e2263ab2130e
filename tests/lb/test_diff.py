"""Pure: parsing HAProxy's servers-state dump and planning runtime-API changes."""

from __future__ import annotations

import pytest

from vnfha.agents.lb.diff import FDRAIN, FMAINT, ParseError, ServerState, parse_servers_state, plan

# Captured from Debian's haproxy 2.6 (`show servers state be`).
DUMP = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state \
srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl \
srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 be 1 web-1 127.0.0.1 0 1 1 1 1 8 2 0 14 0 0 0 - 9001 - 0 0 - - 0
3 be 2 web-2 127.0.0.1 2 8 1 1 0 8 2 0 6 0 0 0 - 9002 - 0 0 - - 0
4 other 1 x 127.0.0.1 2 0 1 1 0 8 2 0 6 0 0 0 - 9002 - 0 0 - - 0

"""


def test_parse_reads_one_backend():
    st = parse_servers_state(DUMP, "be")
    assert set(st) == {"web-1", "web-2"}
    assert st["web-1"].forced_maint and not st["web-1"].up
    assert st["web-2"].forced_drain and st["web-2"].up
    assert st["web-2"].describe() == "haproxy: UP DRAIN"


@pytest.mark.parametrize("text", ["", "Can't find backend.\n", "1\n3 be 1 web-1\n",
                                  "1\n# be_name srv_name\nbe web-1\n"])
def test_parse_refuses_what_is_not_a_dump(text):
    with pytest.raises(ParseError):
        parse_servers_state(text, "be")


def s(name: str, admin: int = 0, op: int = 2) -> ServerState:
    return ServerState(name=name, op_state=op, admin_state=admin)


def test_plan_sets_excluded_to_maint_and_in_service_to_ready():
    servers = {"a": s("a"), "b": s("b", FMAINT), "c": s("c", FDRAIN)}
    changes, missing = plan({"a": False, "b": True, "c": True, "d": True}, servers, {}, "maint")
    assert [(c.server, c.state) for c in changes] == [("a", "maint"), ("b", "ready"),
                                                       ("c", "ready")]
    assert missing == ["d"]


def test_plan_is_empty_when_in_step_and_uses_the_server_map():
    servers = {"srv1": s("srv1", FMAINT), "srv2": s("srv2")}
    changes, _ = plan({"a": False, "b": True}, servers, {"a": "srv1", "b": "srv2"}, "maint")
    assert changes == []


def test_plan_drain_mode():
    servers = {"a": s("a"), "b": s("b", FMAINT), "c": s("c", FDRAIN)}
    changes, _ = plan({"a": False, "b": False, "c": False}, servers, {}, "drain")
    assert [(c.server, c.state) for c in changes] == [("a", "drain"), ("b", "drain")]
