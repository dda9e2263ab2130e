"""Real disk faults for tests: a size-limited tmpfs (ENOSPC) and a loop-mounted ext4
that can be shut down (EIO). Both are mounted under a test's tmp dir and always
unmounted/detached by the context manager, whatever the test did."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def need_root_mounts() -> None:
    """Skip (with the reason) where mounts are impossible; the suite runs as root."""
    if os.geteuid() != 0:
        pytest.skip("disk-fault tests mount filesystems: run as root")


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30).stdout


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "4m") at ``path``: writes past it fail with ENOSPC."""
    need_root_mounts()
    path.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def loop_ext4(path: Path, image: Path, size_mb: int = 32) -> Iterator[Path]:
    """An ext4 filesystem on a loop device, mounted at ``path`` (see :func:`shutdown_fs`)."""
    need_root_mounts()
    if shutil.which("mkfs.ext4") is None or shutil.which("losetup") is None:
        pytest.skip("needs mkfs.ext4 and losetup (e2fsprogs, util-linux)")
    path.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    dev = _run("losetup", "-f", "--show", str(image)).strip()
    try:
        _run("mkfs.ext4", "-q", "-F", dev)
        _run("mount", dev, str(path))
        try:
            yield path
        finally:
            _umount(path)
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)
        image.unlink(missing_ok=True)


def shutdown_fs(mountpoint: Path) -> None:
    """Shut the ext4 filesystem down: from now on every I/O on it fails with EIO."""
    fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)


def fill(mountpoint: Path, name: str = "filler") -> Path:
    """Take every free byte of the filesystem (bounded by its size); returns the filler."""
    filler = mountpoint / name
    chunk = b"\0" * (64 << 10)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(1 << 16):  # at most 4 GiB; a small fs fills long before
            try:
                os.write(fd, chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        # then the last partial block
        for _ in range(1 << 10):
            try:
                os.write(fd, b"\0" * 512)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    finally:
        os.close(fd)
    return filler
