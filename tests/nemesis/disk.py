"""Disk faults on a coordinator's data dir: ENOSPC (the filesystem filled) and EIO (the
ext4 shut down with EXT4_IOC_SHUTDOWN, as a failing disk).

When a run enables a disk kind, `prepare` gives every coordinator, before it first
starts, its own ext4 on a loop device, mounted in a mount namespace of its own
(tests/support_disk.py: `PrivateMounts`), for the whole run; `data/<cid>` is a symlink
to it. Nothing is mounted in the root namespace, so no other process on the host
(other labs' `ip netns exec` copy the mount table) can pin it, and no data dir is
ever moved (the old harness moved it onto a tmpfs and back, and the move back failed
with EBUSY). The faults then act on the running node's own disk:

* disk_enospc: a filler takes every free byte; the heal deletes it (and fsyncs the
  directory, so a shutdown right after cannot undo the delete), and the node must
  recover by itself (it is only restarted if it exited, which it should not).
* disk_eio: the filesystem is shut down under the running node; the heal stops the
  node (it may have exited by itself, raft.disk_fatal_after), unmounts and mounts the
  filesystem again (the ext4 journal replays what was fsynced) and starts the node.

Every disk is unmounted and its namespace ended by `Nemesis.close` (and, if a run is
cut short, by support_disk's atexit hook and the holders' parent-death signal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from support_disk import PrivateMounts, ext4_disk, fill, free, shutdown_fs

from .faults import Heal, register, register_setup
from .schedule import KindSpec

if TYPE_CHECKING:
    from .runner import Nemesis

DISK_MB = 256  # sparse: only what the node writes takes space on the host
DISK_KINDS = ("disk_enospc", "disk_eio")


def prepare(nem: Nemesis) -> None:
    """Every coordinator's data dir on an ext4 of its own in a mount namespace of its
    own; called once before the coordinators first start."""
    disks = nem.cluster.root / "disks"
    disks.mkdir(parents=True, exist_ok=True)
    for cid in nem.cluster.cids:
        ns = nem.cleanup.enter_context(_closing(PrivateMounts(hold=nem.bound + 600)))
        nem.disks[cid] = nem.cleanup.enter_context(
            ext4_disk(nem.cluster.root / "data" / cid, disks / f"{cid}.img", DISK_MB, ns))


class _closing:
    """Context manager closing a PrivateMounts (contextlib.closing, typed)."""

    def __init__(self, ns: PrivateMounts) -> None:
        self.ns = ns

    def __enter__(self) -> PrivateMounts:
        return self.ns

    def __exit__(self, *exc: object) -> None:
        self.ns.close()


def _running(nem: Nemesis, cid: str) -> bool:
    proc = nem.cluster.procs.get(cid)
    return proc is not None and proc.poll() is None


def _ensure_started(nem: Nemesis, cid: str) -> None:
    """Start `cid` if it is not running (gone from procs, or exited by itself)."""
    if cid in nem.cluster.procs and not _running(nem, cid):
        nem.cluster.kill(cid)  # reaps it and forgets it
    if cid not in nem.cluster.procs:
        nem.cluster.start_coordinator(cid)


def disk_enospc(nem: Nemesis, cid: str) -> Heal:
    """The data dir's filesystem fills up under the running node; the heal frees the
    space (durably: a disk_eio on the same node may follow within a second, and its
    remount must not bring the filler back) and the node must come back by itself."""
    filler = fill(nem.disks[cid].path)

    def heal() -> None:
        free(filler)
        _ensure_started(nem, cid)
    return heal


def disk_eio(nem: Nemesis, cid: str) -> Heal:
    """The data dir's filesystem is shut down under the running node: every read and
    write fails with EIO, as on a failing disk."""
    shutdown_fs(nem.disks[cid].path)

    def heal() -> None:
        if cid in nem.cluster.procs:
            nem.cluster.kill(cid)
        nem.disks[cid].remount()
        nem.cluster.start_coordinator(cid)
    return heal


register(KindSpec("disk_enospc", ("c1", "c2", "c3", "leader"), 1.0, 3.0), disk_enospc)
register(KindSpec("disk_eio", ("c1", "c2", "c3", "leader"), 1.0, 3.0), disk_eio)
for _kind in DISK_KINDS:
    register_setup(_kind, prepare)
