"""Claim and release virtual IPs: a reconcile loop over the interface addresses.

After vip-manager: we keep the *desired* state (per group: this VIP, held or
not) and put the *actual* addresses right, on every call to `want`, on every
address or link event from netlink, and on a timer. An address someone removed
by hand comes back; one added by hand for a group we do not hold goes away.
Addresses we were never told about are never touched.

Releasing is on the failover critical path (the successor is promoted only after
we report that we hold nothing), so `want(..., held=False)` deletes the address
straight away, one netlink request (~0.6 ms measured in a namespace), without a
dump first.

Optionally VIPs get a finite kernel lifetime (``lifetime`` seconds), refreshed
by the loop: if the agent is SIGKILLed or frozen the kernel drops the VIP by
itself about ``lifetime`` seconds later. It is a backstop only, never the fast
path: lifetimes are whole seconds. A refresh updates the lifetime of the address in
place (RTM_NEWADDR with NLM_F_REPLACE: the address is never absent, nothing is
re-announced) once half the lifetime is left, and is logged at debug level: it is
routine. The kernel reports every lifetime update to netlink listeners as an
RTM_NEWADDR, so `ip monitor address` prints one line per refresh; that is the kernel
telling of the new lifetime, not a new address (measured: `ip addr change` does the
same).

Acts in the network namespace of its callers: create, start and call it from
threads in the namespace that holds the VIPs (the agent process lives in its VM's
namespace, so that is automatic; tests use ``Host.call``). The loop and the
announcement threads inherit the namespace of the thread that started them.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vnfha.agents import announce

log = logging.getLogger("vnfha.agent.vip")

IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
INFINITE_LIFETIME = 0xFFFFFFFF
_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV6_IFADDR = 0x100
_RTM_NEWLINK = 16
_IFNAMSIZ = 16


class VipError(RuntimeError):
    """The kernel refused a VIP change, or the interface is missing."""


@dataclass(frozen=True)
class VipSpec:
    """A VIP in interface form ("198.18.0.100/24", "2001:2::100/64") on ``interface``.

    The address is normalised (so "2001:2:0::100/64" and "2001:2::100/64" are the
    same spec); the prefix length is required because it decides the on-link
    route the kernel adds with the address.
    """

    address: str
    interface: str = "eth0"

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or "/" not in self.address:
            raise ValueError(f"VIP address needs a prefix length (e.g. 198.18.0.100/24): "
                             f"{self.address!r}")
        try:
            iface = ipaddress.ip_interface(self.address)
        except ValueError as e:
            raise ValueError(f"bad VIP address {self.address!r}: {e}") from None
        ip = iface.ip
        if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
            raise ValueError(f"VIP address must be a unicast address, not {self.address!r}")
        if ip.version == 4 and iface.network.prefixlen < 31 and ip in (
                iface.network.network_address, iface.network.broadcast_address):
            raise ValueError(f"VIP {self.address!r} is the network or broadcast address")
        name = self.interface
        if (not isinstance(name, str) or not name or len(name) >= _IFNAMSIZ
                or any(c in name for c in "/ \t\n:") or name in (".", "..")):
            raise ValueError(f"bad interface name {name!r}")
        object.__setattr__(self, "address", str(iface))

    @property
    def ip(self) -> str:
        return str(ipaddress.ip_interface(self.address).ip)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_interface(self.address).network.prefixlen

    @property
    def version(self) -> int:
        return ipaddress.ip_interface(self.address).version


OnChange = Callable[[str, VipSpec, bool], None]
"""on_change(key, spec, present): called after we added (True) or removed (False) a VIP."""


@dataclass
class _Want:
    spec: VipSpec
    held: bool
    cancel: threading.Event = field(default_factory=threading.Event)  # stops its GARP burst
    announced: float = 0.0  # monotonic time of the last announcement


class VipManager:
    """Desired-vs-actual VIP state for the groups of one agent."""

    def __init__(self, garp_count: int = 3, garp_interval: float = 0.02,
                 refresh_interval: float = 5.0, reconcile_interval: float = 0.5,
                 lifetime: int | None = None, on_change: OnChange | None = None) -> None:
        if garp_count < 1 or garp_interval < 0:
            raise ValueError("garp_count must be >= 1 and garp_interval >= 0")
        if refresh_interval <= 0 or reconcile_interval <= 0:
            raise ValueError("refresh_interval and reconcile_interval must be positive")
        if lifetime is not None and (lifetime < 2 or reconcile_interval * 2 > lifetime):
            # Lifetimes are whole seconds and we refresh once a second at most, so
            # anything shorter risks the kernel dropping a VIP we still hold.
            raise ValueError(f"lifetime must be >= 2 s and >= 2 x reconcile_interval, "
                             f"got {lifetime}")
        self.garp_count = garp_count
        self.garp_interval = garp_interval
        self.refresh_interval = refresh_interval
        self.reconcile_interval = reconcile_interval
        self.lifetime = lifetime
        self.on_change = on_change
        # Set by the owner: the VIP layer never (re)adds an address once this says
        # the lease is over, even if a reconcile runs before the owner releases.
        self.may_hold: Callable[[], bool] = lambda: True
        self._wants: dict[str, _Want] = {}
        self._lock = threading.RLock()
        self._ipr: IPRoute | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the public surface --------------------------------------------------------

    def want(self, key: str, spec: VipSpec, held: bool) -> None:
        """Set the desired state of ``key``'s VIP and act on it now.

        Returns once the address is configured (held) or gone (not held); the
        announcement burst after a claim runs in a background thread. Raises
        VipError if the kernel refuses (the desired state is kept: the loop
        retries).
        """
        if not isinstance(spec, VipSpec):
            raise TypeError(f"spec must be a VipSpec, got {type(spec).__name__}")
        with self._lock:
            old = self._wants.get(key)
            if old is not None and old.spec == spec and old.held == held:
                # Nothing new (callers repeat themselves): just make sure, and do
                # not cut short an announcement burst still running.
                if not held:
                    self._ensure_absent(key, spec)
                elif self._ensure_present(key, spec):
                    self._burst(key, old)
                return
            if old is not None:
                old.cancel.set()
            self._wants[key] = new = _Want(spec, held)
            if old is not None and old.held and old.spec != spec:
                self._ensure_absent(key, old.spec)  # the group's VIP changed under us
            if held:
                self._ensure_present(key, spec)
                self._burst(key, new)  # newly held: tell the LAN even if it was there
            else:
                self._ensure_absent(key, spec)

    def holding(self, key: str) -> bool:
        """Whether we are meant to hold ``key``'s VIP (desired state; the loop makes it so)."""
        with self._lock:
            w = self._wants.get(key)
            return w is not None and w.held

    def configured(self, spec: VipSpec) -> bool:
        """Whether the kernel has the address now (metrics and /readyz compare it with
        the role; `holding` is only the desired state)."""
        with self._lock:
            try:
                return spec.address in self._dump(spec.interface)
            except VipError:
                return False

    def reconcile(self) -> list[str]:
        """Put actual addresses right against the desired state; return what was done."""
        actions: list[str] = []
        with self._lock:
            actual: dict[str, dict[str, int]] = {}  # interface -> {address: valid_lft}
            for ifname in {w.spec.interface for w in self._wants.values()}:
                try:
                    actual[ifname] = self._dump(ifname)
                except VipError as e:
                    log.warning("cannot read addresses", extra={"error": str(e)})
            wanted = self._held_addresses()
            for key, w in self._wants.items():
                have = actual.get(w.spec.interface)
                if have is None:
                    continue
                try:
                    if w.held and w.spec.address not in have:
                        self._add(w.spec)
                        actions.append(f"add {key} {w.spec.address} {w.spec.interface}")
                        self._notify(key, w.spec, True)
                        self._burst(key, w)
                    elif w.held and self._needs_refresh(have[w.spec.address]):
                        if self._add(w.spec, replace=True):
                            actions.append(f"refresh {key} {w.spec.address} "
                                           f"{w.spec.interface}")
                    elif (not w.held and w.spec.address in have
                          and (w.spec.interface, w.spec.address) not in wanted):
                        self._delete(w.spec)
                        actions.append(f"remove {key} {w.spec.address} {w.spec.interface}")
                        self._notify(key, w.spec, False)
                except VipError as e:
                    log.warning("reconcile failed", extra={"key": key, "error": str(e)})
        for a in actions:
            # A lifetime refresh is routine (every lifetime/2 s while held): debug only.
            (log.debug if a.startswith("refresh ") else log.info)("vip reconciled: %s", a)
        return actions

    def remove_unowned(self, specs: list[VipSpec]) -> list[str]:
        """Remove these VIPs where present and not held: at agent start we hold no lease.

        A VIP left configured by a previous run of the agent (SIGKILL, crash)
        would otherwise answer ARP next to the real active.
        """
        actions = []
        with self._lock:
            wanted = self._held_addresses()
            for spec in specs:
                if (spec.interface, spec.address) in wanted:
                    continue
                if self._delete(spec, missing_ok=True):
                    actions.append(f"remove unowned {spec.address} {spec.interface}")
        return actions

    def start(self) -> None:
        """Run the loop: reconcile on netlink events and every reconcile_interval."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            mon = self._monitor_socket()  # before the thread: it must exist in our netns
            self._thread = threading.Thread(target=self._loop, args=(mon,), name="vip-reconcile",
                                            daemon=True)
            self._thread.start()

    def stop(self, release: bool = True) -> list[str]:
        """Stop the loop; with ``release`` remove every held VIP (deconfigure on shutdown)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        actions = []
        with self._lock:
            for key, w in self._wants.items():
                w.cancel.set()
                if release and w.held:
                    w.held = False
                    try:
                        if self._delete(w.spec, missing_ok=True):
                            actions.append(f"remove {key} {w.spec.address} {w.spec.interface}")
                            self._notify(key, w.spec, False)
                    except VipError as e:
                        log.error("cannot release VIP", extra={"key": key, "error": str(e)})
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None
        return actions

    def __enter__(self) -> VipManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(release=True)

    # -- the loop ------------------------------------------------------------------

    def _monitor_socket(self) -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                          socket.NETLINK_ROUTE)
        s.bind((0, _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV6_IFADDR))
        return s

    def _loop(self, mon: socket.socket) -> None:
        next_refresh = time.monotonic() + self.refresh_interval
        with mon:
            while not self._stop.is_set():
                ready, _, _ = select.select([mon], [], [], self.reconcile_interval)
                link_event = bool(ready) and self._drain(mon)
                if self._stop.is_set():
                    break
                try:
                    self.reconcile()
                    now = time.monotonic()
                    if link_event or now >= next_refresh:
                        next_refresh = now + self.refresh_interval
                        self._announce_held()
                except Exception:  # the loop must outlive any one failure
                    log.exception("vip reconcile loop error")

    @staticmethod
    def _drain(mon: socket.socket) -> bool:
        """Read all pending notifications; True if one was a link change."""
        link = False
        for _ in range(1000):  # bounded: events are only a trigger to re-read
            try:
                data = mon.recv(65536)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # overrun: we re-read everything anyway
                    continue
                raise
            off = 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                link = link or kind == _RTM_NEWLINK
                off += max((length + 3) & ~3, 16)
        return link

    def _announce_held(self) -> None:
        """One announcement per held VIP: keeps neighbours' caches pointed at us."""
        with self._lock:
            held = [(k, w) for k, w in self._wants.items() if w.held]
        for key, w in held:
            try:
                announce.announce(w.spec.interface, w.spec.ip, count=1, cancel=w.cancel)
                w.announced = time.monotonic()
            except (OSError, ValueError) as e:
                log.warning("announce failed", extra={"key": key, "error": str(e)})

    def _burst(self, key: str, w: _Want) -> None:
        def run() -> None:
            try:
                announce.announce(w.spec.interface, w.spec.ip, self.garp_count,
                                  self.garp_interval, cancel=w.cancel)
                w.announced = time.monotonic()
            except (OSError, ValueError) as e:
                log.warning("announce failed", extra={"key": key, "error": str(e)})

        threading.Thread(target=run, name=f"vip-announce-{key}", daemon=True).start()

    # -- netlink -------------------------------------------------------------------

    def _netlink(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = IPRoute()
        return self._ipr

    @staticmethod
    def _index(ifname: str) -> int:
        try:
            return socket.if_nametoindex(ifname)
        except OSError:
            raise VipError(f"no interface {ifname!r} in this network namespace") from None

    def _dump(self, ifname: str) -> dict[str, int]:
        """Addresses on ``ifname`` (interface form) with their remaining valid lifetime."""
        index = self._index(ifname)
        try:
            msgs = self._netlink().get_addr(index=index)
        except NetlinkError as e:
            raise VipError(f"cannot list addresses of {ifname}: {e}") from e
        out = {}
        for m in msgs:
            ip = ipaddress.ip_address(m.get_attr("IFA_ADDRESS"))
            cache = m.get_attr("IFA_CACHEINFO") or {}
            out[f"{ip}/{m['prefixlen']}"] = cache.get("ifa_valid", INFINITE_LIFETIME)
        return out

    def _needs_refresh(self, valid_left: int) -> bool:
        """Refresh once half the lifetime is left (the kernel counts whole seconds): often
        enough that a loop tick or two of delay cannot let a held VIP lapse, rarely
        enough that a long lifetime is not rewritten every second."""
        return (self.lifetime is not None and valid_left != INFINITE_LIFETIME
                and 2 * valid_left <= self.lifetime)

    def _add(self, spec: VipSpec, replace: bool = False) -> bool:
        """Configure the address (``replace``: update the lifetime of one that is there);
        False if it was there already, or we may not hold it."""
        if not self.may_hold():
            # Expected at a lease's end when a reconcile races the release: a refresh is
            # simply skipped; refusing to (re)add an address is worth a warning.
            (log.debug if replace else log.warning)(
                "not adding VIP: the lease has run out",
                extra={"address": spec.address, "interface": spec.interface})
            return False
        kw: dict[str, Any] = {"index": self._index(spec.interface), "address": spec.ip,
                              "prefixlen": spec.prefixlen}
        if spec.version == 6:
            kw["flags"] = IFA_F_NODAD  # usable at once, no tentative phase
        if self.lifetime is not None:
            kw["valid_lft"] = kw["preferred_lft"] = self.lifetime
        try:
            self._netlink().addr("replace" if replace else "add", **kw)
        except NetlinkError as e:
            if e.code == errno.EEXIST:
                return False
            raise VipError(f"cannot add {spec.address} to {spec.interface}: {e}") from e
        return True

    def _delete(self, spec: VipSpec, missing_ok: bool = True) -> bool:
        """Remove the address; False if it was not there."""
        try:
            index = self._index(spec.interface)
        except VipError:
            if missing_ok:  # no interface, so no address either
                return False
            raise
        try:
            self._netlink().addr("del", index=index, address=spec.ip, prefixlen=spec.prefixlen)
        except NetlinkError as e:
            if e.code == errno.EADDRNOTAVAIL and missing_ok:
                return False
            raise VipError(f"cannot remove {spec.address} from {spec.interface}: {e}") from e
        return True

    def _ensure_present(self, key: str, spec: VipSpec) -> bool:
        added = self._add(spec)
        if added:
            log.info("vip added", extra={"key": key, "address": spec.address,
                                         "interface": spec.interface})
            self._notify(key, spec, True)
        return added

    def _ensure_absent(self, key: str, spec: VipSpec) -> bool:
        if (spec.interface, spec.address) in self._held_addresses():
            return False  # another held group wants the same address
        removed = self._delete(spec)
        if removed:
            log.info("vip removed", extra={"key": key, "address": spec.address,
                                           "interface": spec.interface})
            self._notify(key, spec, False)
        return removed

    def _held_addresses(self) -> set[tuple[str, str]]:
        return {(w.spec.interface, w.spec.address) for w in self._wants.values() if w.held}

    def _notify(self, key: str, spec: VipSpec, present: bool) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(key, spec, present)
        except Exception:
            log.exception("on_change callback failed")
