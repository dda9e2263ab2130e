"""Gratuitous ARP and unsolicited NA, sent from one namespace host, seen on another."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time

import pytest
from netns.fixtures import Capture, lab, swept_labs

from vnfha.agents import announce
from vnfha.agents.announce import AnnounceError, send_garp, send_unsolicited_na
from vnfha_lab.netlab import Host, Lab

__all__ = ["lab", "swept_labs"]
pytestmark = pytest.mark.slow

VIP4 = "198.18.0.100"
VIP6 = "2001:2::100"
ETH_P_IPV6 = 0x86DD


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def is_garp(frame: bytes) -> bool:
    return struct.unpack("!H", frame[12:14])[0] == announce.ETH_P_ARP and frame[28:32] == \
        ipaddress.ip_address(VIP4).packed


def is_na(frame: bytes) -> bool:
    return (struct.unpack("!H", frame[12:14])[0] == ETH_P_IPV6 and frame[20] == 58
            and frame[54] == announce.ND_NEIGHBOR_ADVERT)


@pytest.fixture
def pair(lab: Lab) -> tuple[Host, Host]:
    return (lab.add_host("a", lab.address(1), lab.address(1, 6)),
            lab.add_host("b", lab.address(2), lab.address(2, 6)))


def test_garp_frame_fields(pair: tuple[Host, Host]) -> None:
    a, b = pair
    with Capture(b) as cap:
        assert a.call(send_garp, "eth0", VIP4, 3, 0.01) == 3
        frames = cap.wait_for(is_garp, count=3)
    assert len(frames) == 3
    f = frames[0]
    mac = mac_bytes(a.mac)
    assert f[0:6] == b"\xff" * 6 and f[6:12] == mac
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", f[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    vip = ipaddress.ip_address(VIP4).packed
    assert f[22:28] == mac and f[28:32] == vip  # sender
    assert f[32:38] == b"\0" * 6 and f[38:42] == vip  # target
    assert len(f) >= 60


def icmpv6_checksum(src: bytes, dst: bytes, payload: bytes) -> int:
    data = src + dst + struct.pack("!I3xB", len(payload), 58) + payload
    data += b"\0" * (len(data) % 2)
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_unsolicited_na_fields(pair: tuple[Host, Host]) -> None:
    a, b = pair
    with Capture(b) as cap:
        assert a.call(send_unsolicited_na, "eth0", VIP6, 2, 0.01) == 2
        frames = cap.wait_for(is_na, count=2)
    assert len(frames) == 2
    f = frames[0]
    mac = mac_bytes(a.mac)
    assert f[0:6] == bytes.fromhex("333300000001") and f[6:12] == mac
    ip6 = f[14:54]
    assert ip6[6] == 58 and ip6[7] == 255, "next header ICMPv6, hop limit 255"
    assert ip6[24:40] == ipaddress.ip_address("ff02::1").packed
    icmp = f[54:54 + struct.unpack("!H", ip6[4:6])[0]]
    kind, code, _cksum, flags = struct.unpack("!BBHI", icmp[:8])
    assert (kind, code) == (136, 0)
    assert flags & announce.NA_FLAG_OVERRIDE and not flags & 0x40000000  # O set, S clear
    assert not flags & 0x80000000  # not a router
    assert icmp[8:24] == ipaddress.ip_address(VIP6).packed
    assert icmp[24:26] == b"\x02\x01" and icmp[26:32] == mac
    assert icmpv6_checksum(ip6[8:24], ip6[24:40], icmp) == 0xFFFF, "kernel filled the checksum"


def test_garp_updates_an_existing_neighbour_entry(pair: tuple[Host, Host]) -> None:
    a, b = pair
    b.run(["ip", "neigh", "replace", VIP4, "lladdr", "02:00:00:00:00:99", "dev", "eth0",
           "nud", "stale"], check=True)
    assert b.neighbours()[VIP4] == "02:00:00:00:00:99"
    a.call(send_garp, "eth0", VIP4, 1, 0)
    deadline = time.monotonic() + 2
    while b.neighbours().get(VIP4) != a.mac and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b.neighbours()[VIP4] == a.mac


def test_na_updates_an_existing_neighbour_entry(pair: tuple[Host, Host]) -> None:
    a, b = pair
    b.run(["ip", "-6", "neigh", "replace", VIP6, "lladdr", "02:00:00:00:00:99", "dev", "eth0",
           "nud", "stale"], check=True)
    a.call(send_unsolicited_na, "eth0", VIP6, 1, 0)
    deadline = time.monotonic() + 2
    while b.neighbours().get(VIP6) != a.mac and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b.neighbours()[VIP6] == a.mac


def test_announce_picks_the_family_and_accepts_interface_form(pair: tuple[Host, Host]) -> None:
    a, b = pair
    with Capture(b) as cap:
        a.call(announce.announce, "eth0", f"{VIP4}/24", 1, 0)
        a.call(announce.announce, "eth0", f"{VIP6}/64", 1, 0)
        assert cap.wait_for(is_garp) and cap.wait_for(is_na)


def test_cancel_cuts_a_burst_short(pair: tuple[Host, Host]) -> None:
    a, _ = pair
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    started = time.monotonic()
    sent = a.call(send_garp, "eth0", VIP4, 100, 0.05, cancel)
    assert 1 <= sent < 10 and time.monotonic() - started < 1


def test_clear_errors(pair: tuple[Host, Host]) -> None:
    a, _ = pair
    with pytest.raises(AnnounceError, match="no interface 'eth9'"):
        a.call(send_garp, "eth9", VIP4, 1, 0)
    with pytest.raises(AnnounceError, match="no interface 'eth9'"):
        a.call(send_unsolicited_na, "eth9", VIP6, 1, 0)
    with pytest.raises(ValueError, match="not an IPv4"):
        send_garp("eth0", VIP6)
    with pytest.raises(ValueError, match="not an IPv6"):
        send_unsolicited_na("eth0", VIP4)
    with pytest.raises(ValueError, match="bad IP"):
        announce.announce("eth0", "198.18.0.300")
    with pytest.raises(ValueError, match="count"):
        send_garp("eth0", VIP4, count=0)
    with pytest.raises(AnnounceError, match="Ethernet"):
        a.call(send_garp, "lo", VIP4, 1, 0)


def test_frames_are_pure_functions() -> None:
    mac = bytes.fromhex("020000000001")
    frame = announce.garp_frame(mac, VIP4)
    assert len(frame) == 60 and frame[12:14] == b"\x08\x06"
    msg = announce.na_message(mac, VIP6)
    assert len(msg) == 32 and msg[0] == 136 and socket.inet_ntop(socket.AF_INET6,
                                                                  msg[8:24]) == VIP6
