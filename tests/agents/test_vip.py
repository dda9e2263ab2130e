"""VipManager against real network namespaces: claim, release, reconcile, announce."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

import pytest
from netns.fixtures import Capture, lab, swept_labs

from vnfha.agents import announce
from vnfha.agents.vip import IFA_F_TENTATIVE, VipError, VipManager, VipSpec
from vnfha_lab.netlab import Host, Lab

__all__ = ["lab", "swept_labs"]
pytestmark = pytest.mark.slow

V4 = VipSpec("198.18.0.100/24")
V6 = VipSpec("2001:2::100/64")


@pytest.fixture
def pair(lab: Lab) -> tuple[Host, Host]:
    return (lab.add_host("a", lab.address(1), lab.address(1, 6)),
            lab.add_host("b", lab.address(2), lab.address(2, 6)))


@pytest.fixture
def mgr(pair: tuple[Host, Host]) -> Iterator[VipManager]:
    """A manager for host a: call it through ``a.call`` (it acts in its caller's netns)."""
    a = pair[0]
    m = VipManager(garp_count=3, garp_interval=0.01, reconcile_interval=0.1)
    yield m
    a.call(m.stop, True)


def wait_until(cond: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_claim_adds_and_release_removes(pair: tuple[Host, Host], mgr: VipManager) -> None:
    a, _ = pair
    a.call(mgr.want, "g1", V4, True)
    assert V4.address in a.addresses()  # read independently of the manager
    assert mgr.holding("g1")
    a.call(mgr.want, "g1", V4, False)
    assert V4.address not in a.addresses()
    assert not mgr.holding("g1")
    assert a.addresses() == {"198.18.0.1/24", "2001:2::1/64"}, "our own addresses untouched"


def test_ipv6_vip_is_usable_at_once(pair: tuple[Host, Host], mgr: VipManager) -> None:
    a, b = pair
    a.call(mgr.want, "g6", V6, True)
    info = {i["address"]: i for i in a.address_info()}
    assert V6.address in info
    assert not info[V6.address]["flags"] & IFA_F_TENTATIVE
    assert b.ping(V6.ip)


def test_reconcile_restores_a_vip_removed_by_hand(pair: tuple[Host, Host],
                                                  mgr: VipManager) -> None:
    a, _ = pair
    a.call(mgr.want, "g1", V4, True)
    a.run(["ip", "addr", "del", V4.address, "dev", "eth0"], check=True)
    assert V4.address not in a.addresses()
    assert a.call(mgr.reconcile) == ["add g1 198.18.0.100/24 eth0"]
    assert V4.address in a.addresses()
    assert a.call(mgr.reconcile) == []


def test_reconcile_removes_a_vip_added_by_hand_for_a_group_not_held(
        pair: tuple[Host, Host], mgr: VipManager) -> None:
    a, _ = pair
    a.call(mgr.want, "g1", V4, False)
    a.run(["ip", "addr", "add", V4.address, "dev", "eth0"], check=True)
    a.run(["ip", "addr", "add", "198.18.0.200/24", "dev", "eth0"], check=True)
    assert a.call(mgr.reconcile) == ["remove g1 198.18.0.100/24 eth0"]
    assert V4.address not in a.addresses()
    assert "198.18.0.200/24" in a.addresses(), "addresses of no group are never touched"


def test_the_loop_puts_things_right_on_netlink_events(pair: tuple[Host, Host],
                                                      mgr: VipManager) -> None:
    a, _ = pair
    a.call(mgr.want, "g1", V4, True)
    a.call(mgr.want, "g6", V6, True)
    a.call(mgr.start)
    for spec in (V4, V6):
        a.run(["ip", "addr", "del", spec.address, "dev", "eth0"], check=True)
        assert wait_until(lambda s=spec: s.address in a.addresses(), timeout=2)


def test_stop_with_release_removes_every_held_vip(pair: tuple[Host, Host]) -> None:
    a, _ = pair
    changes: list[tuple[str, str, bool]] = []
    m = VipManager(on_change=lambda k, s, p: changes.append((k, s.address, p)))
    a.call(m.want, "g1", V4, True)
    a.call(m.want, "g6", V6, True)
    a.call(m.start)
    assert {V4.address, V6.address} <= a.addresses()
    actions = a.call(m.stop, True)
    assert sorted(actions) == ["remove g1 198.18.0.100/24 eth0", "remove g6 2001:2::100/64 eth0"]
    assert not {V4.address, V6.address} & a.addresses()
    assert not m.holding("g1") and not m.holding("g6")
    assert ("g1", V4.address, True) in changes and ("g1", V4.address, False) in changes


def test_stop_without_release_keeps_the_vips(pair: tuple[Host, Host]) -> None:
    a, _ = pair
    m = VipManager()
    a.call(m.want, "g1", V4, True)
    a.call(m.stop, False)
    assert V4.address in a.addresses()


def test_remove_unowned_at_start(pair: tuple[Host, Host], mgr: VipManager) -> None:
    a, _ = pair
    a.run(["ip", "addr", "add", V4.address, "dev", "eth0"], check=True)
    a.run(["ip", "addr", "add", V6.address, "dev", "eth0", "nodad"], check=True)
    other = VipSpec("198.18.0.101/24")
    actions = a.call(mgr.remove_unowned, [V4, V6, other])
    assert actions == ["remove unowned 198.18.0.100/24 eth0",
                       "remove unowned 2001:2::100/64 eth0"]
    assert not {V4.address, V6.address} & a.addresses()
    a.call(mgr.want, "g1", V4, True)
    assert a.call(mgr.remove_unowned, [V4]) == [], "a held VIP is not unowned"
    assert V4.address in a.addresses()


def test_claim_sends_a_garp_burst_seen_by_a_peer(pair: tuple[Host, Host],
                                                 mgr: VipManager) -> None:
    a, b = pair
    vip = V4.ip
    with Capture(b, announce.ETH_P_ARP) as cap:
        a.call(mgr.want, "g1", V4, True)
        frames = cap.wait_for(lambda f: f[20:22] == b"\0\1" and f[28:32] == f[38:42]
                              and f[28:32] == bytes(map(int, vip.split("."))), count=3)
    assert len(frames) == 3
    assert all(f[6:12] == bytes.fromhex(a.mac.replace(":", "")) for f in frames)
    assert b.ping(vip)


def test_claim_sends_unsolicited_nas_for_ipv6(pair: tuple[Host, Host], mgr: VipManager) -> None:
    a, b = pair
    with Capture(b, 0x86DD) as cap:
        a.call(mgr.want, "g6", V6, True)
        frames = cap.wait_for(lambda f: f[20] == 58 and f[54] == 136, count=3)
    assert len(frames) == 3


def test_repeated_want_is_idempotent(pair: tuple[Host, Host], mgr: VipManager) -> None:
    a, _ = pair
    for _ in range(3):
        a.call(mgr.want, "g1", V4, True)
    assert V4.address in a.addresses()
    for _ in range(2):
        a.call(mgr.want, "g1", V4, False)
    assert V4.address not in a.addresses()


def test_two_groups_sharing_an_address(pair: tuple[Host, Host], mgr: VipManager) -> None:
    a, _ = pair
    a.call(mgr.want, "g1", V4, True)
    a.call(mgr.want, "g2", V4, True)
    a.call(mgr.want, "g1", V4, False)
    assert V4.address in a.addresses(), "still held by g2"
    assert a.call(mgr.reconcile) == []
    a.call(mgr.want, "g2", V4, False)
    assert V4.address not in a.addresses()


def test_changing_the_vip_of_a_held_group_moves_it(pair: tuple[Host, Host],
                                                   mgr: VipManager) -> None:
    a, _ = pair
    a.call(mgr.want, "g1", V4, True)
    moved = VipSpec("198.18.0.101/24")
    a.call(mgr.want, "g1", moved, True)
    assert moved.address in a.addresses() and V4.address not in a.addresses()


def test_missing_interface_is_a_clear_error(pair: tuple[Host, Host], mgr: VipManager) -> None:
    a, _ = pair
    with pytest.raises(VipError, match="no interface 'eth9'"):
        a.call(mgr.want, "g1", VipSpec("198.18.0.100/24", "eth9"), True)
    assert a.call(mgr.reconcile) == []  # logged, retried later, no crash


@pytest.mark.parametrize(("address", "interface", "problem"), [
    ("198.18.0.100", "eth0", "prefix length"),
    ("198.18.0.300/24", "eth0", "bad VIP address"),
    ("198.18.0.0/24", "eth0", "network or broadcast"),
    ("198.18.0.255/24", "eth0", "network or broadcast"),
    ("224.0.0.5/24", "eth0", "unicast"),
    ("fe80::1/64", "eth0", "unicast"),
    ("198.18.0.100/24", "", "interface name"),
    ("198.18.0.100/24", "a-very-long-interface", "interface name"),
    ("198.18.0.100/24", "eth0/1", "interface name"),
])
def test_bad_spec_is_a_value_error(address: str, interface: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        VipSpec(address, interface)


def test_spec_is_normalised() -> None:
    assert VipSpec("2001:2:0:0::100/64") == V6
    assert (V6.ip, V6.prefixlen, V6.version) == ("2001:2::100", 64, 6)


def test_finite_lifetime_is_refreshed_while_running_and_expires_after(
        pair: tuple[Host, Host]) -> None:
    """The backstop: a VIP with a kernel lifetime outlives its lifetime only while refreshed."""
    a, _ = pair
    m = VipManager(lifetime=2, reconcile_interval=0.2)
    a.call(m.want, "g1", V4, True)
    a.call(m.start)
    time.sleep(3)
    assert V4.address in a.addresses(), "refreshed by the loop"
    a.call(m.stop, False)  # like a SIGKILLed agent: nobody refreshes any more
    started = time.monotonic()
    assert wait_until(lambda: V4.address not in a.addresses(), timeout=4)
    assert time.monotonic() - started <= 3.0


def test_release_latency(pair: tuple[Host, Host], mgr: VipManager) -> None:
    """Release is on the failover critical path: it must take about a millisecond."""
    a, _ = pair

    def measure() -> tuple[list[float], list[float]]:
        adds, dels = [], []
        for spec in [V4, V6] * 20:
            t = time.perf_counter()
            mgr.want("g", spec, True)
            adds.append(time.perf_counter() - t)
            t = time.perf_counter()
            mgr.want("g", spec, False)
            dels.append(time.perf_counter() - t)
        return adds, dels

    adds, dels = a.call(measure)
    print(f"want(held=True) median {statistics.median(adds) * 1e3:.2f} ms, "
          f"want(held=False) median {statistics.median(dels) * 1e3:.2f} ms, "
          f"max {max(dels) * 1e3:.2f} ms")
    assert statistics.median(dels) < 0.02


def test_guardian_process_removes_vip_when_agent_dies_or_lease_lapses(lab) -> None:
    """The real guardian, in a namespace: a closed pipe (agent killed) removes the
    VIP at once; a lease that is not renewed (agent frozen) removes it at the
    deadline."""
    import time as _time

    from vnfha.agents.guardian import GuardianLink

    host = lab.add_host("g1", ipv4=lab.address(61))
    vip = "198.18.0.161/24"

    def add() -> None:
        from pyroute2 import IPRoute
        with IPRoute() as ipr:
            ipr.addr("add", index=ipr.link_lookup(ifname="eth0")[0],
                     address="198.18.0.161", prefixlen=24)

    # 1. agent dies: pipe closes without goodbye
    host.call(add)
    link = host.call(GuardianLink)
    link.lease(_time.monotonic() + 30)
    link.hold("web", vip, "eth0")
    _time.sleep(1.0)  # the guardian is up and has read its messages
    assert vip in host.addresses()
    import os
    os.close(link._w)  # what the kernel does when the agent is SIGKILLed
    deadline = _time.monotonic() + 5
    while vip in host.addresses() and _time.monotonic() < deadline:
        _time.sleep(0.01)
    assert vip not in host.addresses()
    link._proc.wait(timeout=5)

    # 2. agent frozen: the lease runs out and nobody renews it
    host.call(add)
    link = host.call(GuardianLink)
    link.lease(_time.monotonic() + 1.5)
    link.hold("web", vip, "eth0")
    _time.sleep(1.0)
    assert vip in host.addresses()
    deadline = _time.monotonic() + 5
    while vip in host.addresses() and _time.monotonic() < deadline:
        _time.sleep(0.01)
    assert vip not in host.addresses()
    link.close()


def _addr_events(mon, ip: str) -> list[int]:
    """Types (20 RTM_NEWADDR, 21 RTM_DELADDR) of the pending address notifications for
    `ip`, read from a netlink socket subscribed to IPv4 address changes."""
    import socket as _socket
    import struct

    packed = _socket.inet_aton(ip)
    kinds = []
    for _ in range(1000):  # bounded: drains what is pending
        try:
            data = mon.recv(65536)
        except BlockingIOError:
            break
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if packed in data[off:off + length]:
                kinds.append(kind)
            off += max((length + 3) & ~3, 16)
    return kinds


def test_lifetime_refresh_is_quiet_rare_and_never_removes(
        pair: tuple[Host, Host], caplog: pytest.LogCaptureFixture) -> None:
    """Issue 15: the refresh was logged at info every second. Now: debug only, once half
    the lifetime is left (lifetime 4 s: one refresh in 3.5 s, not three), the address is
    never deleted and re-added, and it outlives its lifetime while held."""
    import logging
    import socket as _socket

    a, _ = pair
    caplog.set_level(logging.DEBUG, logger="vnfha.agent.vip")

    def monitor() -> _socket.socket:
        s = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_NONBLOCK,
                           _socket.NETLINK_ROUTE)
        s.bind((0, 0x10))  # RTMGRP_IPV4_IFADDR, in a's namespace
        return s

    mon = a.call(monitor)
    m = VipManager(lifetime=4, reconcile_interval=0.2)
    try:
        a.call(m.want, "g1", V4, True)
        a.call(m.start)
        time.sleep(3.5)
        events = _addr_events(mon, V4.ip)
        assert 21 not in events, "the VIP was deleted while held"
        assert events.count(20) <= 2, f"claim + at most one refresh, got {events}"
        time.sleep(1.5)  # past the 4 s lifetime: only a refresh keeps it
        assert V4.address in a.addresses()
        assert 21 not in _addr_events(mon, V4.ip)
    finally:
        a.call(m.stop, True)
        mon.close()
    refreshes = [r for r in caplog.records if "refresh" in r.getMessage()]
    assert refreshes and all(r.levelno == logging.DEBUG for r in refreshes)


def test_guardian_finding_the_vip_already_gone_logs_nothing_above_debug(
        pair: tuple[Host, Host], caplog: pytest.LogCaptureFixture) -> None:
    """Issue 15: at a lease's end agent and guardian both remove the VIP; the second one
    found it gone and logged 'Cannot assign requested address'. Gone is what both wanted."""
    import logging

    from pyroute2 import IPRoute

    from vnfha.agents.guardian import GuardState, remove_all

    a, _ = pair
    caplog.set_level(logging.DEBUG, logger="vnfha.agent.guardian")
    state = GuardState()
    state.apply("hold web 198.18.0.100/24 eth0")  # the agent removed it already
    state.apply("hold sip 198.18.0.101/24 eth9")  # even the interface is gone

    def race() -> None:
        with IPRoute() as ipr:
            remove_all(state, ipr, "lease ran out")

    a.call(race)
    assert not state.held
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert not loud, [(r.levelname, r.getMessage(), r.__dict__.get("error")) for r in loud]
    assert not any("Cannot assign" in str(r.__dict__) for r in caplog.records)
