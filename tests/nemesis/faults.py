"""Fault kinds: each is one function `inject(nem, target) -> heal`, plus its KindSpec.

A fault acts on the running LabCluster (real processes, real namespaces, real
nftables) and returns the function that undoes it; the runner calls that after
the step's duration, and again for everything still open in its final
`finally`, so every fault is healed. To add a kind, write one function and one
`register(...)` line. Targets named by role ("leader", "active-vm",
"standby-vm") are resolved when the step runs (`Nemesis.resolve`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vnfha_lab.netlab import pids_in_netns

from .schedule import KindSpec

if TYPE_CHECKING:
    from .runner import Nemesis

Heal = Callable[[], None]
Inject = Callable[["Nemesis", str], Heal]

VMS = ("vm1", "vm2", "active-vm", "standby-vm")
COORDS = ("c1", "c2", "c3", "leader")
HOSTS = VMS + COORDS
PAIRS = ("vm1+vm2", "leader+active-vm", "c1+vm1", "c2+vm2", "c3+active-vm", "leader+c1",
         "leader+c2")

FAULTS: dict[str, tuple[KindSpec, Inject]] = {}
DEFAULT_OFF: set[str] = set()  # kinds a run enables only when asked (--kinds / NEMESIS_KINDS)
# Per kind, what a run that enables it must prepare before the cluster starts (e.g. the
# disk kinds put every coordinator's data dir on a filesystem of its own); each hook
# runs once per run however many kinds name it.
SETUP: dict[str, Callable[[Nemesis], None]] = {}
# Kinds that break a property on main, with the fix that must land before the bounded
# test (test_nemesis.py) runs them by default; bench/nemesis.py runs them anyway.
# Empty since the kernel-enforced VIP lease (agents/kernellease.py) landed: kill_vm and
# stop_vm left two VIP holders for up to the 2 s address lifetime before it.
PENDING_FIX: dict[str, str] = {}


def register(spec: KindSpec, fn: Inject, default: bool = True) -> None:
    FAULTS[spec.name] = (spec, fn)
    if not default:
        DEFAULT_OFF.add(spec.name)


def register_setup(kind: str, hook: Callable[[Nemesis], None]) -> None:
    SETUP[kind] = hook


def default_kinds() -> list[str]:
    return [k for k in FAULTS if k not in DEFAULT_OFF]


# -- processes ---------------------------------------------------------------------------


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def guardian_pids(nem: Nemesis, vm: str) -> list[int]:
    """The VIP guardian(s) running in `vm`'s namespace (the agent starts one)."""
    ns = nem.cluster.hosts[vm].netns
    return [p for p in pids_in_netns(ns) if "vnfha.agents.guardian" in _cmdline(p)]


def _signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def kill_agent(nem: Nemesis, vm: str) -> Heal:
    """kill -9 of the agent's process group (its guardian, in a session of its own,
    lives on and drops the VIP); healed by starting the agent again."""
    nem.cluster.kill(f"{vm}-agent")
    return lambda: nem.restart_agent(vm)


def kill_guardian(nem: Nemesis, vm: str) -> Heal:
    """kill -9 of the guardian; nothing restarts it, so the heal restarts the agent
    cleanly (SIGTERM: it releases what it holds, then starts a new guardian)."""
    _signal_pids(guardian_pids(nem, vm), signal.SIGKILL)
    return lambda: nem.restart_agent(vm, graceful=True)


def kill_vm(nem: Nemesis, vm: str) -> Heal:
    """kill -9 of every process in the VM (agent, guardian, VNFC, service) while its
    kernel and link stay up: an OOM-killer spree or a crashed runtime. Nothing in
    user space is left to drop the VIP; healed by starting them all again."""
    pids = [p for p in pids_in_netns(nem.cluster.hosts[vm].netns) if p != os.getpid()]
    for name in (f"{vm}-agent", f"{vm}-kv", f"{vm}-svc"):
        nem.cluster.procs.pop(name, None)
    _signal_pids(pids, signal.SIGKILL)

    def heal() -> None:
        nem.cluster.start_service(vm)
        nem.cluster.start_kvstore(vm)
        nem.restart_agent(vm)
    return heal


def kill_coordinator(nem: Nemesis, cid: str) -> Heal:
    nem.cluster.kill(cid)
    return lambda: nem.cluster.start_coordinator(cid)


def restart_coordinator(nem: Nemesis, cid: str) -> Heal:
    """A clean stop (SIGTERM, as systemd does), down for the step, then started."""
    proc = nem.cluster.procs.pop(cid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    return lambda: nem.cluster.start_coordinator(cid)


def stop_agent(nem: Nemesis, vm: str) -> Heal:
    name = f"{vm}-agent"
    nem.cluster.signal(name, signal.SIGSTOP)
    return lambda: nem.cluster.signal(name, signal.SIGCONT)


def stop_guardian(nem: Nemesis, vm: str) -> Heal:
    pids = guardian_pids(nem, vm)
    _signal_pids(pids, signal.SIGSTOP)
    return lambda: _signal_pids(pids, signal.SIGCONT)


def stop_vm(nem: Nemesis, vm: str) -> Heal:
    """Every process in the VM's namespace frozen, kernel running (a frozen VM)."""
    pids = [p for p in pids_in_netns(nem.cluster.hosts[vm].netns) if p != os.getpid()]
    _signal_pids(pids, signal.SIGSTOP)
    return lambda: _signal_pids(pids, signal.SIGCONT)


def stop_coordinator(nem: Nemesis, cid: str) -> Heal:
    nem.cluster.signal(cid, signal.SIGSTOP)
    return lambda: nem.cluster.signal(cid, signal.SIGCONT)


# -- network -----------------------------------------------------------------------------


def cut_host(nem: Nemesis, host: str) -> Heal:
    """nftables drop in the switch: `host` against everyone."""
    h = nem.cluster.hosts[host]
    nem.cluster.lab.cut(h)
    return lambda: nem.cluster.lab.heal(h)


def _pair(nem: Nemesis, target: str) -> tuple[str, str]:
    a, b = (nem.resolve(x) for x in target.split("+"))
    if a == b:  # e.g. leader+c1 when c1 leads: pick another coordinator
        b = next(c for c in nem.cluster.cids if c != a)
    return a, b


def cut_pair(nem: Nemesis, target: str) -> Heal:
    """nftables drop in the switch between two hosts; both still reach everyone else."""
    a, b = (nem.cluster.hosts[x] for x in _pair(nem, target))
    nem.cluster.lab.cut(a, b)
    return lambda: nem.cluster.lab.heal(a, b)


def isolate_pair(nem: Nemesis, target: str) -> Heal:
    """Bridge port isolation of two hosts: they lose each other, keep the rest."""
    a, b = (nem.cluster.hosts[x] for x in _pair(nem, target))
    nem.cluster.lab.isolate(a)
    nem.cluster.lab.isolate(b)

    def heal() -> None:
        nem.cluster.lab.isolate(a, on=False)
        nem.cluster.lab.isolate(b, on=False)
    return heal


def link_down(nem: Nemesis, host: str) -> Heal:
    h = nem.cluster.hosts[host]
    nem.cluster.lab.link_down(h)
    return lambda: nem.cluster.lab.link_up(h)


NFT_TABLE = "vhnemesis"


def drop_inbound(nem: Nemesis, host: str) -> Heal:
    """nftables inside the host's namespace: drop everything arriving from the other
    coordinators and VMs (the client still gets through: a VM that serves its
    clients but has lost its control plane, a gray partition)."""
    h = nem.cluster.hosts[host]
    peers = sorted(nem.cluster.hosts[x].ip4 for x in (*nem.cluster.cids, *nem.cluster.vms)
                   if x != host)
    rules = (f"add table inet {NFT_TABLE}\n"
             f"add chain inet {NFT_TABLE} in {{ type filter hook input priority -300; }}\n"
             f"add rule inet {NFT_TABLE} in ip saddr {{ {', '.join(peers)} }} drop\n")
    r = subprocess.run(["ip", "netns", "exec", h.netns, "nft", "-f", "-"], input=rules,
                       capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise RuntimeError(f"nft in {host}: {r.stderr.strip()}")

    def heal() -> None:
        subprocess.run(["ip", "netns", "exec", h.netns, "nft", "delete", "table", "inet",
                        NFT_TABLE], capture_output=True, text=True, timeout=10)
    return heal


register(KindSpec("kill_agent", VMS), kill_agent)
register(KindSpec("kill_guardian", VMS), kill_guardian)
register(KindSpec("kill_vm", VMS), kill_vm)
register(KindSpec("kill_coordinator", ("c1", "c2", "c3")), kill_coordinator)
register(KindSpec("kill_leader", ("leader",)), kill_coordinator)
register(KindSpec("restart_coordinator", COORDS, 0.0, 1.0), restart_coordinator)
register(KindSpec("stop_agent", VMS), stop_agent)
register(KindSpec("stop_guardian", VMS), stop_guardian)
register(KindSpec("stop_vm", VMS, 0.5, 3.0), stop_vm)
register(KindSpec("stop_leader", ("leader",)), stop_coordinator)
register(KindSpec("cut_host", HOSTS), cut_host)
register(KindSpec("cut_pair", PAIRS), cut_pair)
register(KindSpec("isolate_pair", PAIRS), isolate_pair)
register(KindSpec("link_down", HOSTS), link_down)
register(KindSpec("drop_inbound", HOSTS), drop_inbound)

from . import disk  # noqa: E402, F401  (registers the disk faults)
