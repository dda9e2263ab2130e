"""Disk faults on a coordinator's data dir: ENOSPC (small tmpfs) and EIO (ext4 on a
loop device, shut down with EXT4_IOC_SHUTDOWN). Off by default (faults.DEFAULT_OFF)
until the coordinator handles them (issue 12, deliverable 1): enable with
`bench/nemesis.py --with-disk` or NEMESIS_KINDS.

Both move the node's journal onto the faulty filesystem while the coordinator is
stopped, start it there, break the filesystem, and on heal stop it, copy the
journal back onto the ordinary disk, unmount and start it again. Every mount is
undone by the heal (the runner heals everything in its `finally`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from .faults import Heal, register
from .schedule import KindSpec

if TYPE_CHECKING:
    from .runner import Nemesis

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2  # what fsync made durable stays; nothing more is written


def _sh(*argv: str) -> None:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip() or r.returncode}")


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _move_onto(nem: Nemesis, cid: str, mount: list[str]) -> tuple[Path, Path]:
    """Stop `cid`, mount a filesystem at its data dir holding a copy of its journal."""
    data = nem.cluster.root / "data" / cid
    keep = data.with_name(f"{cid}.orig")
    nem.cluster.kill(cid)
    data.rename(keep)
    data.mkdir()
    _sh("mount", *mount, str(data))
    shutil.copytree(keep, data, dirs_exist_ok=True)
    return data, keep


def _move_back(nem: Nemesis, cid: str, data: Path, keep: Path, remount: list[str]) -> None:
    """Stop `cid`, copy what its faulty filesystem kept back onto the ordinary disk."""
    if cid in nem.cluster.procs:
        nem.cluster.kill(cid)
    try:
        if remount:  # a shut-down ext4 reads nothing: unmount, mount again (journal replay)
            _sh("umount", str(data))
            _sh("mount", *remount, str(data))
        shutil.rmtree(keep)
        shutil.copytree(data, keep)
    finally:
        with contextlib.suppress(RuntimeError):
            _sh("umount", str(data))
        if not os.path.ismount(data) and data.exists():
            shutil.rmtree(data)
            keep.rename(data)
    nem.cluster.start_coordinator(cid)


def disk_enospc(nem: Nemesis, cid: str) -> Heal:
    """The data dir fills up (ENOSPC) for the step; the heal frees the space first (the
    node should recover by itself), then moves the journal back."""
    used = _du(nem.cluster.root / "data" / cid)
    data, keep = _move_onto(nem, cid, ["-t", "tmpfs", "-o", f"size={used + (1 << 20)}",
                                       "tmpfs"])
    nem.cluster.start_coordinator(cid)
    filler = data / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        for _ in range(4096):  # bounded: at most 64 MiB
            f.write(b"\0" * (16 << 10))
            f.flush()

    def heal() -> None:
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()
        _move_back(nem, cid, data, keep, remount=[])
    return heal


def disk_eio(nem: Nemesis, cid: str) -> Heal:
    """The data dir's filesystem is shut down under the running node: every read and
    write fails with EIO, as on a failing disk."""
    image = nem.cluster.root / f"{cid}-disk.img"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    _sh("mkfs.ext4", "-q", "-F", str(image))
    opts = ["-o", "loop", str(image)]
    data, keep = _move_onto(nem, cid, opts)
    nem.cluster.start_coordinator(cid)
    fd = os.open(data, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)

    def heal() -> None:
        try:
            _move_back(nem, cid, data, keep, remount=opts)
        finally:
            image.unlink(missing_ok=True)
    return heal


register(KindSpec("disk_enospc", ("c1", "c2", "c3", "leader"), 1.0, 3.0), disk_enospc,
         default=False)
register(KindSpec("disk_eio", ("c1", "c2", "c3", "leader"), 1.0, 3.0), disk_eio,
         default=False)
