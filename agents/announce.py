"""Gratuitous ARP and unsolicited neighbour advertisements: tell the LAN a VIP moved.

Our own small raw-socket senders (no maintained library does just this). They
act in the network namespace of the calling thread: the agent runs inside its
VM, so that is the VM's. Root (CAP_NET_RAW) is needed.

* IPv4: an ARP *request* with sender IP = target IP = the VIP, sender MAC = our
  interface's, to the broadcast address (RFC 5227 "ARP announcement"). Linux
  neighbours update an existing entry for the VIP from it, whatever their
  ``arp_accept``; requests are also what most switches and routers honour.
* IPv6: an ICMPv6 neighbour advertisement (type 136) with the override flag,
  target = the VIP and a target link-layer address option, to ff02::1 with hop
  limit 255 (receivers drop NDP with any other hop limit). The kernel computes
  the ICMPv6 checksum for raw ICMPv6 sockets.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
import threading
import time

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_REQUEST = 1
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LL_ADDR = 2
ALL_NODES = "ff02::1"
BROADCAST = b"\xff" * 6
ARPHRD_ETHER = 1
ETH_MIN_FRAME = 60  # without FCS; drivers pad short frames, we do it ourselves


class AnnounceError(OSError):
    """Sending an announcement failed (no such interface, no permission, link gone)."""


SIOCGIFHWADDR = 0x8927


def _ifindex(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise AnnounceError(f"no interface {ifname!r} in this network namespace") from None


def _check_pacing(count: int, interval: float) -> None:
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if interval < 0:
        raise ValueError(f"interval must not be negative, got {interval}")


def _ip(address: str, version: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Accepts "a.b.c.d" or the interface form "a.b.c.d/len"."""
    try:
        ip = ipaddress.ip_interface(address).ip
    except ValueError:
        raise ValueError(f"bad IP address {address!r}") from None
    if ip.version != version:
        raise ValueError(f"{address!r} is not an IPv{version} address")
    return ip


def garp_frame(mac: bytes, ipv4: str) -> bytes:
    """The Ethernet frame of a gratuitous ARP request for ``ipv4`` from ``mac``."""
    ip = _ip(ipv4, 4).packed
    eth = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, ARP_REQUEST) + mac + ip + b"\0" * 6 + ip
    return (eth + arp).ljust(ETH_MIN_FRAME, b"\0")


def na_message(mac: bytes, ipv6: str) -> bytes:
    """ICMPv6 unsolicited NA for ``ipv6`` (checksum left 0: the kernel fills it in)."""
    target = _ip(ipv6, 6).packed
    return (struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_OVERRIDE) + target
            + struct.pack("!BB", ND_OPT_TARGET_LL_ADDR, 1) + mac)


def _wait(interval: float, cancel: threading.Event | None) -> bool:
    """Sleep between sends; True if cancelled meanwhile."""
    if cancel is not None:
        return cancel.wait(interval)
    time.sleep(interval)
    return False


def send_garp(ifname: str, ipv4: str, count: int = 3, interval: float = 0.02,
              cancel: threading.Event | None = None) -> int:
    """Send ``count`` gratuitous ARPs for ``ipv4`` on ``ifname``; return how many went out.

    ``cancel`` stops the burst early (the VIP was released meanwhile): announcing
    an address we no longer hold would pull traffic to us.
    """
    _check_pacing(count, interval)
    _ip(ipv4, 4)
    index = _ifindex(ifname)
    frame = garp_frame(_mac(ifname), ipv4)
    try:
        # Protocol 0: a send-only socket registers no receive hook, so bind() does
        # not wait for an RCU grace period (~15 ms) before the first frame goes out.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise AnnounceError("gratuitous ARP needs CAP_NET_RAW (run as root)") from None
    sent = 0
    with sock:
        try:
            sock.bind((ifname, 0))
            for i in range(count):
                if cancel is not None and cancel.is_set():
                    break
                sock.send(frame)
                sent += 1
                if i + 1 < count and _wait(interval, cancel):
                    break
        except AnnounceError:
            raise
        except OSError as e:
            raise AnnounceError(f"gratuitous ARP on {ifname} (index {index}): {e}") from e
    return sent


def send_unsolicited_na(ifname: str, ipv6: str, count: int = 3, interval: float = 0.02,
                        cancel: threading.Event | None = None) -> int:
    """Send ``count`` unsolicited NAs for ``ipv6`` on ``ifname``; return how many went out."""
    _check_pacing(count, interval)
    _ip(ipv6, 6)
    index = _ifindex(ifname)
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    except PermissionError:
        raise AnnounceError("neighbour advertisements need CAP_NET_RAW (run as root)") from None
    sent = 0
    with sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            message = na_message(_mac(ifname), ipv6)
            for i in range(count):
                if cancel is not None and cancel.is_set():
                    break
                sock.sendto(message, (ALL_NODES, 0, 0, index))
                sent += 1
                if i + 1 < count and _wait(interval, cancel):
                    break
        except AnnounceError:
            raise
        except OSError as e:
            raise AnnounceError(f"neighbour advertisement on {ifname}: {e}") from e
    return sent


def _mac(ifname: str) -> bytes:
    """The interface's MAC via SIOCGIFHWADDR on a datagram socket.

    Not through an AF_PACKET socket: binding or closing one waits for an RCU grace
    period (synchronize_net, 10-20 ms here), which would delay the first
    announcement on the failover path."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            info = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR,
                               struct.pack("256s", ifname.encode()[:15]))
        except OSError:
            raise AnnounceError(f"no interface {ifname!r} in this network namespace") from None
    hatype = struct.unpack_from("H", info, 16)[0]
    if hatype != ARPHRD_ETHER:
        raise AnnounceError(f"{ifname} is not an Ethernet interface")
    return info[18:24]


def announce(ifname: str, address: str, count: int = 3, interval: float = 0.02,
             cancel: threading.Event | None = None) -> int:
    """GARP or unsolicited NA, by the address family of ``address`` ("a/len" accepted)."""
    try:
        version = ipaddress.ip_interface(address).version
    except ValueError:
        raise ValueError(f"bad IP address {address!r}") from None
    if version == 4:
        return send_garp(ifname, address, count, interval, cancel)
    return send_unsolicited_na(ifname, address, count, interval, cancel)
