"""Network-namespace test hosts: a switch, VMs and clients, made and removed by the caller.

Used by the e2e tests, `vnfha demo` and the benchmarks. Every lab gets a unique
prefix (``vh`` + 4 hex digits) and names everything it creates after it, so
parallel runs never clash and leftovers of a dead run can be found and swept.
Nothing is ever attached to the root namespace:

* ``<prefix>-sw`` holds the bridge ``br0`` (the switch) and one port per host,
  named ``<prefix>-<host>`` (at most 15 characters, so host names are short);
* ``<prefix>-<host>`` holds ``lo`` and ``eth0``, the other end of its port.

Addresses must come from 198.18.0.0/15 or 2001:2::/48 (the benchmarking ranges).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MARKER = "vh"
"""Every lab prefix is MARKER + 4 hex digits; `Lab.sweep` only ever touches these."""
PREFIX_RE = re.compile(rf"^{MARKER}[0-9a-f]{{4}}$")
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")  # port name "<prefix>-<name>" <= 15 chars
NETNS_DIR = Path("/run/netns")
OWNER_DIR = Path("/run/vnfha-netlab")  # <prefix>.json: who owns a lab, for the sweep
ALLOWED = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("2001:2::/48"))

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

# nftables constants (linux/netfilter/nf_tables.h); the bridge family is NFPROTO_BRIDGE.
_NFPROTO_BRIDGE = 7
_NFT_META_IIFNAME = 6
_NFT_META_OIFNAME = 7
_NF_DROP = 0


class LabError(RuntimeError):
    """A lab operation failed (the message carries the command and its stderr)."""


def _sh(argv: Sequence[str], timeout: float = 10.0, check: bool = True) -> str:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


def in_netns(netns: str, fn: Callable[..., T], *args: Any, timeout: float = 30.0) -> T:
    """Run ``fn(*args)`` in a fresh thread that has entered ``netns``.

    setns(CLONE_NEWNET) is per thread, so this is cheap (no fork) and leaves the
    caller where it was. Sockets created inside stay in ``netns`` for their whole
    life, so ``fn`` may return an open socket for use from any thread.
    """
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            box["error"] = LabError(f"network namespace {netns!r} does not exist")
            return
        try:
            if _libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                box["error"] = OSError(err, f"setns({netns}): {os.strerror(err)}")
                return
        finally:
            os.close(fd)
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=body, name=f"netns-{netns}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise LabError(f"call in {netns} did not finish within {timeout}s")
    if "error" in box:
        raise box["error"]
    return box["result"]


def _write_sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/{path}", "w") as f:  # resolved in the calling thread's netns
        f.write(value)


def _netns_inode(netns: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / netns).st_ino
    except FileNotFoundError:
        return None


def pids_in_netns(netns: str) -> list[int]:
    """Processes whose network namespace is ``netns`` (they keep it alive after deletion)."""
    ino = _netns_inode(netns)
    if ino is None:
        return []
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.stat(d / "ns" / "net").st_ino == ino:
                out.append(int(d.name))
        except OSError:
            continue
    return out


def _proc_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks: with the pid, it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _check_address(addr: str | None, version: int) -> str | None:
    if addr is None:
        return None
    try:
        iface = ipaddress.ip_interface(addr)
    except ValueError as e:
        raise ValueError(f"bad address {addr!r}: {e}") from None
    if iface.version != version:
        raise ValueError(f"{addr!r} is not an IPv{version} address")
    if "/" not in addr:
        raise ValueError(f"{addr!r} needs a prefix length, e.g. {addr}/24")
    if not any(iface.ip in net for net in ALLOWED):
        raise ValueError(f"{addr!r} is outside 198.18.0.0/15 and 2001:2::/48")
    return str(iface)


class Host:
    """One namespace with ``eth0`` on the lab's switch: a VM or a client."""

    def __init__(self, lab: Lab, name: str, ipv4: str | None, ipv6: str | None) -> None:
        self.lab = lab
        self.name = name
        self.netns = f"{lab.prefix}-{name}"
        self.port = f"{lab.prefix}-{name}"  # its interface in the switch namespace
        self.ifname = "eth0"
        self.ipv4 = ipv4
        self.ipv6 = ipv6

    def __repr__(self) -> str:
        return f"Host({self.name!r}, netns={self.netns!r}, ipv4={self.ipv4}, ipv6={self.ipv6})"

    @property
    def ip4(self) -> str | None:
        """The IPv4 address without its prefix length."""
        return self.ipv4.split("/")[0] if self.ipv4 else None

    @property
    def ip6(self) -> str | None:
        """The IPv6 address without its prefix length."""
        return self.ipv6.split("/")[0] if self.ipv6 else None

    @property
    def mac(self) -> str:
        return self.call(_read_mac, self.ifname)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0) -> T:
        """Run a Python callable inside this host's namespace (see `in_netns`)."""
        return in_netns(self.netns, fn, *args, timeout=timeout)

    def popen(self, argv: Sequence[str], prefix: Sequence[str] = (),
              **kw: Any) -> subprocess.Popen[Any]:
        """Start a process in this host, in its own session so `Lab.close` can kill its group.

        ``prefix`` runs before ``ip netns exec`` (e.g. nsenter into a private mount
        namespace, so a test's mounts are seen by this process only)."""
        kw.setdefault("start_new_session", True)
        proc = subprocess.Popen([*prefix, "ip", "netns", "exec", self.netns, *argv], **kw)
        self.lab._track(proc)
        return proc

    def run(self, argv: Sequence[str], timeout: float = 10.0,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a command in this host and wait for it (bounded by ``timeout``)."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True,
                              text=True, timeout=timeout, check=check)

    def address_info(self) -> list[dict[str, Any]]:
        """Addresses on eth0 as dicts: address ("a/len"), family, flags (IFA_F_* bits)."""
        return self.call(_dump_addresses, self.ifname)

    def addresses(self) -> set[str]:
        """Current global addresses on eth0, e.g. {"198.18.0.11/24", "198.18.0.100/24"}."""
        return {a["address"] for a in self.address_info() if a["scope"] == 0}

    def neighbours(self) -> dict[str, str]:
        """The neighbour cache of eth0: IP -> MAC (entries without a MAC left out)."""
        return self.call(_dump_neighbours, self.ifname)

    def ping(self, dst: str, count: int = 1, timeout: float = 1.0) -> bool:
        """True if ``dst`` answers an ICMP echo within ``timeout`` (per attempt).

        Our own sender (no ping binary here): bounded to ``count`` attempts.
        """
        return self.call(_ping, dst, count, timeout, timeout=count * timeout + 5)


class Lab:
    """A switch namespace and its hosts. Context manager; `close` is idempotent."""

    def __init__(self, prefix: str | None = None, subnet4: str = "198.18.0.0/24",
                 subnet6: str = "2001:2::/64") -> None:
        if prefix is None:  # a free random one: 64k prefixes, so look before taking
            for _ in range(50):
                prefix = f"{MARKER}{secrets.token_hex(2)}"
                if _netns_inode(f"{prefix}-sw") is None:
                    break
        self.prefix = prefix
        if not PREFIX_RE.match(self.prefix):
            raise ValueError(f"lab prefix must be {MARKER} + 4 hex digits, got {self.prefix!r}")
        self.subnet4 = ipaddress.ip_network(subnet4)
        self.subnet6 = ipaddress.ip_network(subnet6)
        for net in (self.subnet4, self.subnet6):
            if not any(net.subnet_of(a) for a in ALLOWED if a.version == net.version):
                raise ValueError(f"lab subnet {net} is outside 198.18.0.0/15 and 2001:2::/48")
        self.switch = f"{self.prefix}-sw"
        self.hosts: dict[str, Host] = {}
        self._made: list[str] = []  # namespaces this lab created: the only ones close() deletes
        self._procs: list[subprocess.Popen[Any]] = []
        self._cuts: set[tuple[str, str | None]] = set()
        self._lock = threading.Lock()
        self._closed = False
        if _netns_inode(self.switch) is not None:
            raise LabError(f"namespace {self.switch} already exists")
        atexit.register(self.close)
        try:
            self._write_owner()
            self._create_netns(self.switch)
            _sh(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge",
                 "stp_state", "0", "forward_delay", "0"])
            _sh(["ip", "-n", self.switch, "link", "set", "br0", "up"])
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building ----------------------------------------------------------------

    def _write_owner(self) -> None:
        OWNER_DIR.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        (OWNER_DIR / f"{self.prefix}.json").write_text(
            json.dumps({"pid": pid, "start": _proc_start(pid)}))

    def _create_netns(self, netns: str) -> None:
        _sh(["ip", "netns", "add", netns])  # fails if the name is taken: never adopt one
        self._made.append(netns)
        in_netns(netns, _prepare_netns)

    def add_host(self, name: str, ipv4: str | None = None, ipv6: str | None = None) -> Host:
        """A new namespace ``<prefix>-<name>`` whose eth0 is plugged into the switch.

        IPv6 duplicate address detection is off in the host (addresses, link-local
        included, are usable at once), which is what a test wants.
        """
        if not HOST_NAME_RE.match(name) or name == "sw":
            raise ValueError(f"host name must match {HOST_NAME_RE.pattern} and not be 'sw': "
                             f"{name!r}")
        if name in self.hosts:
            raise ValueError(f"host {name!r} already exists")
        ipv4 = _check_address(ipv4, 4)
        ipv6 = _check_address(ipv6, 6)
        host = Host(self, name, ipv4, ipv6)
        self._create_netns(host.netns)
        self.hosts[name] = host
        _sh(["ip", "-n", self.switch, "link", "add", host.port, "type", "veth",
             "peer", "name", "eth0", "netns", host.netns])
        _sh(["ip", "-n", self.switch, "link", "set", host.port, "master", "br0", "up"])
        if ipv4:
            _sh(["ip", "-n", host.netns, "addr", "add", ipv4, "dev", "eth0"])
        if ipv6:
            _sh(["ip", "-n", host.netns, "addr", "add", ipv6, "dev", "eth0", "nodad"])
        _sh(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
        return host

    def address(self, index: int, version: int = 4) -> str:
        """The ``index``-th address of the lab's subnet in interface form ("198.18.0.11/24")."""
        net = self.subnet4 if version == 4 else self.subnet6
        return f"{net.network_address + index}/{net.prefixlen}"

    # -- faults ------------------------------------------------------------------

    def isolate(self, host: Host, on: bool = True) -> None:
        """Bridge port isolation of ``host``'s switch port.

        Cuts exactly this: frames between two *isolated* ports (unicast, broadcast
        and multicast alike, ARP and ND included). An isolated port still talks to
        every non-isolated port. So isolating one host alone cuts nothing; isolate
        A and B to split them from each other while both keep reaching C.
        """
        _sh(["ip", "-n", self.switch, "link", "set", "dev", host.port, "type", "bridge_slave",
             "isolated", "on" if on else "off"])

    def cut(self, a: Host, b: Host | None = None) -> None:
        """Drop every frame between ``a`` and ``b`` (or between ``a`` and everyone).

        Done with nftables in the switch namespace (bridge family, forward hook,
        matching the ports), not in the hosts: it drops everything, ARP, ND and
        traffic to VIPs included, and nothing a host does can see or undo it.
        One table per cut, so `heal` of one pair is a single atomic delete.
        """
        key = _cut_key(a, b)
        with self._lock:
            if key in self._cuts:
                return
            in_netns(self.switch, _nft_add_cut, _cut_table(key), a.port, b.port if b else None)
            self._cuts.add(key)

    def cut_between(self, side_a: Sequence[Host], side_b: Sequence[Host]) -> None:
        """Drop every frame between any host of ``side_a`` and any of ``side_b``, all at
        once (one table, its rules added back to back): a firewall change that reaches
        every pair at the same moment, where a `cut` per pair would leave some pairs
        talking for tens of milliseconds longer. `heal()` with no arguments undoes it."""
        key = ("+".join(sorted(h.name for h in side_a)), "+".join(sorted(h.name for h in side_b)))
        with self._lock:
            if key in self._cuts:
                return
            in_netns(self.switch, _nft_add_cut_between, _cut_table(key),
                     [h.port for h in side_a], [h.port for h in side_b])
            self._cuts.add(key)

    def heal(self, a: Host | None = None, b: Host | None = None) -> None:
        """Undo `cut(a, b)`; with no arguments undo every cut."""
        with self._lock:
            if a is None:
                keys = set(self._cuts)
            else:
                keys = {_cut_key(a, b)} & self._cuts
            for key in keys:
                in_netns(self.switch, _nft_del_table, _cut_table(key))
                self._cuts.discard(key)

    def link_down(self, host: Host) -> None:
        """Take the host's switch port down: its eth0 loses carrier, like a pulled cable."""
        _sh(["ip", "-n", self.switch, "link", "set", host.port, "down"])

    def link_up(self, host: Host) -> None:
        _sh(["ip", "-n", self.switch, "link", "set", host.port, "up"])

    # -- teardown ----------------------------------------------------------------

    def _track(self, proc: subprocess.Popen[Any]) -> None:
        with self._lock:
            if self._closed:
                _kill_group(proc)
                raise LabError("lab is closed")
            self._procs.append(proc)

    def namespaces(self) -> list[str]:
        """The namespaces this lab created (switch first)."""
        return list(self._made)

    def close(self) -> None:
        """Kill every process started here, delete every namespace. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            procs, self._procs = self._procs, []
        for proc in procs:
            _kill_group(proc)
        _remove_namespaces(self.namespaces())
        with contextlib.suppress(FileNotFoundError):
            (OWNER_DIR / f"{self.prefix}.json").unlink()
        atexit.unregister(self.close)

    @staticmethod
    def sweep(pattern: str | re.Pattern[str] = PREFIX_RE, force: bool = False) -> list[str]:
        """Delete namespaces of labs whose owner process is gone; return their names.

        Only names ``<prefix>-...`` where the prefix matches ``pattern`` *and* has
        the lab marker form are considered; ``force`` also sweeps live labs.
        """
        pat = re.compile(pattern) if isinstance(pattern, str) else pattern
        by_prefix: dict[str, list[str]] = {}
        for name in _list_netns():
            prefix = name.split("-", 1)[0]
            if "-" in name and PREFIX_RE.match(prefix) and pat.match(prefix):
                by_prefix.setdefault(prefix, []).append(name)
        swept = []
        for prefix, names in sorted(by_prefix.items()):
            if not force and _owner_alive(prefix):
                continue
            _remove_namespaces(names)
            with contextlib.suppress(FileNotFoundError):
                (OWNER_DIR / f"{prefix}.json").unlink()
            swept.extend(names)
        return swept


# -- helpers that run inside a namespace (via in_netns) --------------------------------


def arp_repliers(ip: str, src_ip: str, wait: float = 0.3) -> set[str]:
    """Broadcast one ARP who-has for `ip` on eth0 (run with `Host.call` inside a lab
    host); the MACs that answered within `wait` seconds. Tells which VMs would answer
    for a VIP, whatever their addresses say (e.g. behind a lapsed kernel lease)."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)) as s:
        s.bind(("eth0", 0x0806))
        mac = s.getsockname()[4]
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac,
                          socket.inet_aton(src_ip), b"\0" * 6, socket.inet_aton(ip))
        s.send(b"\xff" * 6 + mac + b"\x08\x06" + arp)
        s.settimeout(0.05)
        out: set[str] = set()
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                frame = s.recv(2048)
            except TimeoutError:
                continue
            if len(frame) < 32:
                continue
            op, sha, spa = struct.unpack_from("!6xH6s4s", frame, 14)
            if op == 2 and spa == socket.inet_aton(ip):
                out.add(sha.hex(":"))
        return out


def _prepare_netns() -> None:
    """lo up; IPv6 DAD off for interfaces made later (tests want addresses usable at once)."""
    for key in ("default", "all"):
        _write_sysctl(f"net/ipv6/conf/{key}/accept_dad", "0")
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def _read_mac(ifname: str) -> str:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            raise LabError(f"no interface {ifname}")
        return ipr.get_links(idx[0])[0].get_attr("IFLA_ADDRESS")


def _dump_addresses(ifname: str) -> list[dict[str, Any]]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            raise LabError(f"no interface {ifname}")
        out = []
        for msg in ipr.get_addr(index=idx[0]):
            flags = msg.get_attr("IFA_FLAGS")
            out.append({
                "address": f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}",
                "family": msg["family"],
                "scope": msg["scope"],
                "flags": flags if flags is not None else msg["flags"],
                "cacheinfo": msg.get_attr("IFA_CACHEINFO"),
            })
        return out


def _dump_neighbours(ifname: str) -> dict[str, str]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            raise LabError(f"no interface {ifname}")
        out = {}
        for msg in ipr.get_neighbours(ifindex=idx[0]):
            mac = msg.get_attr("NDA_LLADDR")
            if mac:
                out[msg.get_attr("NDA_DST")] = mac
        return out


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _ping(dst: str, count: int, timeout: float) -> bool:
    v6 = ipaddress.ip_address(dst).version == 6
    if v6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        req_type, rep_type = 128, 129
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        req_type, rep_type = 8, 0
    ident = secrets.randbits(16)
    with sock:
        for seq in range(count):
            body = struct.pack("!HH", ident, seq) + b"vnfha-netlab"
            hdr = struct.pack("!BBH", req_type, 0, 0)
            if not v6:  # the kernel fills in the ICMPv6 checksum, not the ICMP one
                hdr = struct.pack("!BBH", req_type, 0, _checksum(hdr + body))
            sock.sendto(hdr + body, (dst, 0))
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data, src = sock.recvfrom(2048)
                except TimeoutError:
                    break
                icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
                if (len(icmp) >= 8 and icmp[0] == rep_type
                        and struct.unpack("!HH", icmp[4:8]) == (ident, seq)
                        and ipaddress.ip_address(src[0].split("%")[0])
                        == ipaddress.ip_address(dst)):
                    return True
    return False


def _nft_expr(name: str, data: list[tuple[str, Any]]) -> dict[str, Any]:
    return {"attrs": [("NFTA_EXPR_NAME", name), ("NFTA_EXPR_DATA", {"attrs": data})]}


def _match_ifname(key: int, ifname: str) -> list[dict[str, Any]]:
    # nft compares the whole IFNAMSIZ buffer for an exact name match.
    value = ifname.encode().ljust(16, b"\0")
    return [
        _nft_expr("meta", [("NFTA_META_DREG", 1), ("NFTA_META_KEY", key)]),
        _nft_expr("cmp", [("NFTA_CMP_SREG", 1), ("NFTA_CMP_OP", 0),
                          ("NFTA_CMP_DATA", {"attrs": [("NFTA_DATA_VALUE", value)]})]),
    ]


def _drop() -> list[dict[str, Any]]:
    verdict = {"attrs": [("NFTA_DATA_VERDICT", {"attrs": [("NFTA_VERDICT_CODE", _NF_DROP)]})]}
    return [_nft_expr("immediate", [("NFTA_IMMEDIATE_DREG", 0),
                                    ("NFTA_IMMEDIATE_DATA", verdict)])]


def _cut_key(a: Host, b: Host | None) -> tuple[str, str | None]:
    if b is None:
        return (a.name, None)
    first, second = sorted((a.name, b.name))
    return (first, second)


def _cut_table(key: tuple[str, str | None]) -> str:
    return f"vhcut_{key[0]}_{key[1] or 'all'}"


def _nft_add_cut(table: str, a_port: str, b_port: str | None) -> None:
    from pyroute2.nftables.main import NFTables

    if b_port is None:  # a against everyone: anything in or out of a's port
        rules = [_match_ifname(_NFT_META_IIFNAME, a_port), _match_ifname(_NFT_META_OIFNAME, a_port)]
    else:
        rules = [
            _match_ifname(_NFT_META_IIFNAME, a_port) + _match_ifname(_NFT_META_OIFNAME, b_port),
            _match_ifname(_NFT_META_IIFNAME, b_port) + _match_ifname(_NFT_META_OIFNAME, a_port),
        ]
    with NFTables(nfgen_family=_NFPROTO_BRIDGE) as nft:
        nft.table("add", name=table)
        nft.chain("add", table=table, name="fwd", hook="forward", type="filter", priority=-200)
        for match in rules:
            nft.rule("add", table=table, chain="fwd", expressions=[match + _drop()])


def _nft_add_cut_between(table: str, a_ports: list[str], b_ports: list[str]) -> None:
    from pyroute2.nftables.main import NFTables

    rules = []
    for a in a_ports:
        for b in b_ports:
            rules.append(_match_ifname(_NFT_META_IIFNAME, a) + _match_ifname(_NFT_META_OIFNAME, b))
            rules.append(_match_ifname(_NFT_META_IIFNAME, b) + _match_ifname(_NFT_META_OIFNAME, a))
    with NFTables(nfgen_family=_NFPROTO_BRIDGE) as nft:
        nft.table("add", name=table)
        nft.chain("add", table=table, name="fwd", hook="forward", type="filter", priority=-200)
        for match in rules:
            nft.rule("add", table=table, chain="fwd", expressions=[match + _drop()])


def _nft_del_table(table: str) -> None:
    from pyroute2.nftables.main import NFTables

    with NFTables(nfgen_family=_NFPROTO_BRIDGE) as nft:
        nft.table("del", name=table)


# -- teardown helpers ------------------------------------------------------------------


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _list_netns() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def _owner_alive(prefix: str) -> bool:
    try:
        owner = json.loads((OWNER_DIR / f"{prefix}.json").read_text())
    except (OSError, ValueError):
        return False
    return _proc_start(int(owner["pid"])) == owner.get("start")


def _remove_namespaces(names: Sequence[str]) -> None:
    """SIGKILL whatever still lives in these namespaces, then delete them."""
    for _ in range(3):  # a process may fork while we kill; bounded retries
        pids = [p for n in names for p in pids_in_netns(n) if p != os.getpid()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    for name in names:
        if _netns_inode(name) is not None:
            _sh(["ip", "netns", "del", name], check=False)
