"""The VIP's kernel-enforced lease: an nftables set with millisecond element timeouts.

The agent and its guardian are user-space processes; a VM whose agent *and*
guardian are frozen (memory pressure, a stuck storage path, a cgroup freeze)
keeps its VIP configured, answers ARP for it and serves clients, next to the new
active. The kernel address lifetime is whole seconds: too coarse. So every held
VIP also has an element in a "live" set whose timeout is the agent's lease
deadline, in milliseconds; the element is written when the VIP is claimed and
rewritten on every lease renewal (the guardian does it on each `lease` message).
Rules in the VM's own network namespace drop, for a managed VIP whose element is
gone (expired, or removed on release):

* ARP: requests for it coming in and any ARP going out with it as sender
  (replies and gratuitous announcements): neighbours stop learning our MAC;
* IPv4/IPv6 traffic to it coming in and from it going out, at priority -300,
  before conntrack: established connections stop too, not only new ones. An
  IPv6 neighbour advertisement for the VIP is sent from the VIP, so it is
  dropped by the same output rule.

No user-space process has to run for the VIP to go quiet at the lease end. The
guardian and the address lifetime stay as further layers (they also take the
address away). Pure batch builders, with the one I/O edge `run_nft`.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Callable, Iterable

TABLE = "vnfha_lease"
NFT_TIMEOUT = 2.0  # seconds one nft run may take before it is an error


class KernelLeaseError(RuntimeError):
    """nft is missing or refused a change."""


def _family(address: str) -> int:
    """4 or 6, for an address with or without a prefix length."""
    return ipaddress.ip_interface(address).version


def _ip(address: str) -> str:
    return str(ipaddress.ip_interface(address).ip)


def setup_batch() -> str:
    """The tables, sets and rules; replaces any left by an earlier run (so a restart
    starts with nothing live: an agent holds no lease when it starts)."""
    return f"""table arp {TABLE}
delete table arp {TABLE}
table inet {TABLE}
delete table inet {TABLE}
table arp {TABLE} {{
  set vips {{ type ipv4_addr; }}
  set live {{ type ipv4_addr; flags timeout; }}
  chain in {{
    type filter hook input priority 0; policy accept;
    arp daddr ip @vips arp daddr ip != @live drop
  }}
  chain out {{
    type filter hook output priority 0; policy accept;
    arp saddr ip @vips arp saddr ip != @live drop
  }}
}}
table inet {TABLE} {{
  set vips4 {{ type ipv4_addr; }}
  set live4 {{ type ipv4_addr; flags timeout; }}
  set vips6 {{ type ipv6_addr; }}
  set live6 {{ type ipv6_addr; flags timeout; }}
  chain in {{
    type filter hook input priority -300; policy accept;
    ip daddr @vips4 ip daddr != @live4 drop
    ip6 daddr @vips6 ip6 daddr != @live6 drop
  }}
  chain out {{
    type filter hook output priority -300; policy accept;
    ip saddr @vips4 ip saddr != @live4 drop
    ip6 saddr @vips6 ip6 saddr != @live6 drop
  }}
}}
"""


def teardown_batch() -> str:
    return f"table arp {TABLE}\ndelete table arp {TABLE}\n" \
           f"table inet {TABLE}\ndelete table inet {TABLE}\n"


def _live_sets(address: str) -> list[tuple[str, str]]:
    """(family, set) pairs holding the live element of this VIP."""
    if _family(address) == 4:
        return [("arp", "live"), ("inet", "live4")]
    return [("inet", "live6")]


def _vip_sets(address: str) -> list[tuple[str, str]]:
    if _family(address) == 4:
        return [("arp", "vips"), ("inet", "vips4")]
    return [("inet", "vips6")]


def manage_batch(address: str) -> str:
    """Put a VIP under the rules (idempotent): from now on it answers only while live."""
    ip = _ip(address)
    return "".join(f"add element {fam} {TABLE} {s} {{ {ip} }}\n" for fam, s in _vip_sets(address))


def live_batch(addresses: Iterable[str], deadline: float, now: float) -> str:
    """Make each VIP live until `deadline` (same clock as `now`), or not live if the
    deadline has passed. Add, delete, add in one transaction: the portable way to set
    a new timeout on an element that may or may not exist (older kernels keep the old
    timeout on a plain re-add)."""
    ms = int((deadline - now) * 1000)  # floored: never past the lease
    lines = []
    for address in addresses:
        ip = _ip(address)
        for fam, s in _live_sets(address):
            lines.append(f"add element {fam} {TABLE} {s} {{ {ip} timeout 1ms }}")
            lines.append(f"delete element {fam} {TABLE} {s} {{ {ip} }}")
            if ms >= 1:
                lines.append(f"add element {fam} {TABLE} {s} {{ {ip} timeout {ms}ms }}")
    return "".join(line + "\n" for line in lines)


def dead_batch(addresses: Iterable[str]) -> str:
    """Not live any more (released): delete the elements, whether or not they exist."""
    lines = []
    for address in addresses:
        ip = _ip(address)
        for fam, s in _live_sets(address):
            lines.append(f"add element {fam} {TABLE} {s} {{ {ip} timeout 1ms }}")
            lines.append(f"delete element {fam} {TABLE} {s} {{ {ip} }}")
    return "".join(line + "\n" for line in lines)


def nft_available() -> bool:
    return shutil.which("nft") is not None


def run_nft(batch: str) -> None:
    """Apply one batch atomically (`nft -f -`, one transaction) in our network namespace."""
    if not batch:
        return
    try:
        done = subprocess.run(["nft", "-f", "-"], input=batch.encode(), capture_output=True,
                              timeout=NFT_TIMEOUT, check=False)
    except FileNotFoundError:
        raise KernelLeaseError("nft is not installed (apt install nftables)") from None
    except subprocess.TimeoutExpired:
        raise KernelLeaseError(f"nft did not finish within {NFT_TIMEOUT} s") from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        raise KernelLeaseError(f"nft refused: {err[0] if err else done.returncode}")


class KernelLease:
    """The kernel lease of this VM's VIPs (one per process that writes it)."""

    def __init__(self, run: Callable[[str], None] = run_nft) -> None:
        self._run = run

    def setup(self) -> None:
        self._run(setup_batch())

    def teardown(self) -> None:
        self._run(teardown_batch())

    def hold(self, address: str, deadline: float, now: float) -> None:
        """Before the address is added: managed, and live until the lease deadline."""
        self._run(manage_batch(address) + live_batch([address], deadline, now))

    def renew(self, addresses: Iterable[str], deadline: float, now: float) -> None:
        self._run(live_batch(list(addresses), deadline, now))

    def release(self, addresses: Iterable[str]) -> None:
        self._run(dead_batch(list(addresses)))


def live_addresses(run: Callable[[list[str]], str]) -> set[str]:
    """The VIPs whose element is live now, read with `run(argv) -> stdout` (so a caller
    outside the namespace can run nft inside it). Expired elements are not listed."""
    import json

    out: set[str] = set()
    for fam, s in (("arp", "live"), ("inet", "live6")):
        try:
            doc = json.loads(run(["nft", "-j", "list", "set", fam, TABLE, s]) or "{}")
        except ValueError:
            continue
        for item in doc.get("nftables", []):
            for elem in item.get("set", {}).get("elem", []):
                value = elem.get("elem", {}).get("val") if isinstance(elem, dict) else elem
                if isinstance(value, str):
                    out.add(value)
    return out
