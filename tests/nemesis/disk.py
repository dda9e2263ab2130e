"""Disk faults on a coordinator's data dir: ENOSPC (small tmpfs) and EIO (ext4 on a
loop device, shut down with EXT4_IOC_SHUTDOWN). Off by default (faults.DEFAULT_OFF)
until the coordinator handles them (issue 12, deliverable 1): enable with
`bench/nemesis.py --with-disk` or NEMESIS_KINDS.

The faulty filesystem is mounted in a private mount namespace held by a `sleep`
(`unshare -m`), and the coordinator is started inside it (LabCluster.wrappers):
nothing is mounted in the root namespace, so no other process on the host (other
labs' `ip netns exec` copy the mount table) can pin it, and it vanishes with the
holder. The journal is copied onto the faulty filesystem while the coordinator is
stopped; on heal it is stopped again, what the filesystem kept is copied back
onto the ordinary disk, and it is started there.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from .faults import Heal, register
from .schedule import KindSpec

if TYPE_CHECKING:
    from .runner import Nemesis

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2  # what fsync made durable stays; nothing more is written
HOLD_SECONDS = 600  # the holder's own bound; the heal ends it long before


class MountNs:
    """A private mount namespace kept alive by a bounded `sleep`; commands run in it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                      "sleep", str(HOLD_SECONDS)], start_new_session=True)
        self.prefix = ["nsenter", "-t", str(self.proc.pid), "-m", "--"]

    def sh(self, *argv: str, check: bool = True) -> str:
        r = subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip() or r.returncode}")
        return r.stdout

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def _fault(nem: Nemesis, cid: str, mount: list[str], remount: list[str],
           breaker: list[str]) -> Heal:
    """Stop `cid`; in a new mount namespace mount the faulty filesystem over its data dir
    with a copy of its journal; start it there; break the filesystem with `breaker`.
    The heal stops it, copies back what the filesystem kept (after `remount` if the
    filesystem must be mounted afresh to be read) and starts it on the ordinary disk."""
    data = nem.cluster.root / "data" / cid
    keep = data.with_name(f"{cid}.orig")
    nem.cluster.kill(cid)
    data.rename(keep)
    data.mkdir()
    ns = MountNs()

    def heal() -> None:
        if cid in nem.cluster.procs:
            nem.cluster.kill(cid)
        nem.cluster.wrappers.pop(cid, None)
        try:
            if remount:  # a shut-down ext4 reads nothing: mount it again (journal replay)
                ns.sh("umount", str(data))
                ns.sh("mount", *remount, str(data))
            kept = ns.sh("ls", "-A", str(data), check=False).split()
            if ns.sh("findmnt", "-n", str(data), check=False).strip() and \
                    set(kept) - {"lost+found", "filler"}:
                shutil.rmtree(keep)
                ns.sh("cp", "-a", f"{data}/.", f"{keep}/")
                ns.sh("rm", "-f", f"{keep}/filler")
        finally:
            ns.sh("umount", str(data), check=False)
            ns.close()
            shutil.rmtree(data, ignore_errors=True)
            keep.rename(data)
            nem.cluster.start_coordinator(cid)

    try:
        ns.sh("mount", *mount, str(data))
        ns.sh("cp", "-a", f"{keep}/.", f"{data}/")
        ns.sh("sync", "-f", str(data))  # the copy is durable before the node starts on it
        nem.cluster.wrappers[cid] = ns.prefix
        nem.cluster.start_coordinator(cid)
        ns.sh(*breaker, check=False)
    except BaseException:
        heal()
        raise
    return heal


def disk_enospc(nem: Nemesis, cid: str) -> Heal:
    """The data dir fills up (ENOSPC) for the step; the heal frees the space first (the
    node should recover by itself), then moves the journal back."""
    data = nem.cluster.root / "data" / cid
    used = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    heal = _fault(nem, cid, ["-t", "tmpfs", "-o", f"size={used + (1 << 20)}", "tmpfs"], [],
                  ["dd", "if=/dev/zero", f"of={data}/filler", "bs=16k", "count=4096"])

    def free_then_heal() -> None:
        subprocess.run([*nem.cluster.wrappers.get(cid, ["true"]), "rm", "-f",
                        f"{data}/filler"], capture_output=True, timeout=30)
        heal()
    return free_then_heal


def disk_eio(nem: Nemesis, cid: str) -> Heal:
    """The data dir's filesystem is shut down under the running node: every read and
    write fails with EIO, as on a failing disk."""
    image = nem.cluster.root / f"{cid}-disk.img"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True,
                   timeout=60)
    data = nem.cluster.root / "data" / cid
    opts = ["-o", "loop", str(image)]
    shutdown = [sys.executable, "-c",
                "import fcntl, os, struct, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
                f"fcntl.ioctl(fd, {EXT4_IOC_SHUTDOWN}, struct.pack('I', "
                f"{EXT4_GOING_FLAGS_NOLOGFLUSH}))", str(data)]
    try:
        heal = _fault(nem, cid, opts, opts, shutdown)
    except BaseException:
        image.unlink(missing_ok=True)
        raise

    def heal_and_remove() -> None:
        try:
            heal()
        finally:
            image.unlink(missing_ok=True)
    return heal_and_remove


register(KindSpec("disk_enospc", ("c1", "c2", "c3", "leader"), 1.0, 3.0), disk_enospc,
         default=False)
register(KindSpec("disk_eio", ("c1", "c2", "c3", "leader"), 1.0, 3.0), disk_eio,
         default=False)
