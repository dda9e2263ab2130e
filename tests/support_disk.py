"""Real disk faults for tests: a size-limited tmpfs or an ext4 on a loop device, filled
(ENOSPC) or shut down (EIO), mounted where no other process can see them.

Why a private mount namespace: a filesystem mounted in the root namespace is copied
into every mount namespace created while it is there (each `ip netns exec` of every
other test on the host makes one), so its unmount can fail with EBUSY and it can leak
past the test. Here each filesystem is mounted inside a private mount namespace held
by a bounded `sleep` (`PrivateMounts`); the test and the processes it starts reach it
through the kernel's `/proc/<holder>/root/<mountpoint>` view, behind a symlink at the
path the caller asked for, so callers need not know. Ending the holder ends the
namespace, its mounts and (autoclear) their loop devices: `close()` does so in the
context managers' `finally`, an `atexit` hook does so if a run is cut short, the
holder dies with the process that made it (parent-death signal) and, at the latest,
when its `sleep` ends.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import os
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2  # what fsync made durable stays; nothing more is written
HOLD_SECONDS = 3600.0  # a holder's own bound; close() ends it long before

_OPEN: set[PrivateMounts] = set()
_OPEN_LOCK = threading.Lock()


def need_root_mounts() -> None:
    """Skip (with the reason) where mounts are impossible; the suite runs as root."""
    if os.geteuid() != 0:
        pytest.skip("disk-fault tests mount filesystems: run as root")


def _run(*cmd: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or f'exit {r.returncode}'}")
    return r.stdout


class PrivateMounts:
    """A private mount namespace kept alive by a bounded `sleep`; mounts made in it.

    Every method is bounded in time; `close()` is idempotent and runs on every path
    (the context managers below, `atexit`, the holder's parent-death signal)."""

    def __init__(self, hold: float = HOLD_SECONDS) -> None:
        need_root_mounts()
        argv = ["unshare", "--mount", "--propagation", "private", "sleep", str(int(hold))]
        # The holder dies with the thread that started it (the main thread in tests and
        # benches): a killed run leaves no namespace behind for long.
        if shutil.which("setpriv") and threading.current_thread() is threading.main_thread():
            argv = ["setpriv", "--pdeathsig", "KILL", *argv]
        self.proc = subprocess.Popen(argv, start_new_session=True)
        self.mounts: list[Path] = []
        with _OPEN_LOCK:
            _OPEN.add(self)
        # Ready once the holder's mount namespace differs from ours (unshare has run).
        mine = os.readlink("/proc/self/ns/mnt")
        for _ in range(500):  # <= 5 s
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{self.proc.pid}/ns/mnt") != mine and \
                        "sleep" in Path(f"/proc/{self.proc.pid}/comm").read_text():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        self.close()
        raise RuntimeError("could not create a private mount namespace (unshare -m)")

    @property
    def prefix(self) -> list[str]:
        """Run a command inside the namespace: `[*prefix, "mount", ...]`."""
        return ["nsenter", "-t", str(self.proc.pid), "-m", "--"]

    def view(self, mountpoint: Path) -> Path:
        """The path under which any process on the host reaches `mountpoint` as it is
        in this namespace (the kernel resolves it in the holder's mount namespace)."""
        return Path(f"/proc/{self.proc.pid}/root") / mountpoint.absolute().relative_to("/")

    def sh(self, *argv: str) -> str:
        return _run(*self.prefix, *argv)

    def mount(self, mountpoint: Path, *args: str) -> None:
        """`mount *args mountpoint` inside the namespace (e.g. "-t", "tmpfs", ...)."""
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.sh("mount", *args, str(mountpoint))
        self.mounts.append(mountpoint)

    def umount(self, mountpoint: Path, timeout: float = 10.0) -> None:
        """Unmount inside the namespace, retrying while busy (a just-killed process's
        files are released asynchronously); raises with the holders' pids if it stays
        busy. Never lazy: a lazily detached ext4 could be mounted twice."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sh("umount", str(mountpoint))
                break
            except RuntimeError as e:
                if "busy" not in str(e).lower() or time.monotonic() >= deadline:
                    users = self.users(mountpoint)
                    raise RuntimeError(f"{e} (open by pids {users})") from None
                time.sleep(0.1)
        with contextlib.suppress(ValueError):
            self.mounts.remove(mountpoint)

    def users(self, mountpoint: Path) -> list[int]:
        """Pids with a file, cwd or root under the mount (as seen from the namespace)."""
        r = subprocess.run([*self.prefix, "fuser", "-m", str(mountpoint)],
                           capture_output=True, text=True, timeout=30)
        return sorted(int(p) for p in r.stdout.split() if p.isdigit())

    def close(self) -> None:
        """Unmount everything (best effort), then end the holder: the namespace goes,
        and with it whatever is still mounted in it. Idempotent."""
        if self.proc.poll() is None:
            for mnt in reversed(self.mounts):
                with contextlib.suppress(Exception):
                    self.sh("umount", str(mnt))
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.mounts.clear()
        with _OPEN_LOCK:
            _OPEN.discard(self)


def open_namespaces() -> list[PrivateMounts]:
    """The namespaces made and not yet closed (a leak check)."""
    with _OPEN_LOCK:
        return [pm for pm in _OPEN if pm.proc.poll() is None]


@atexit.register
def _close_all() -> None:
    with _OPEN_LOCK:
        left = list(_OPEN)
    for pm in left:
        pm.close()


def _link(path: Path, target: Path) -> None:
    """Make `path` a symlink to `target` (replacing an empty dir or an old link)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    elif path.is_dir():
        path.rmdir()  # refuses (OSError) a non-empty dir: never hide a caller's data
    path.symlink_to(target, target_is_directory=True)


class Disk:
    """One faulty filesystem: `path` (a symlink) reaches it; `ns` is its namespace."""

    def __init__(self, path: Path, mountpoint: Path, ns: PrivateMounts,
                 mount_args: list[str]) -> None:
        self.path, self.mountpoint, self.ns, self.mount_args = path, mountpoint, ns, mount_args

    def remount(self) -> None:
        """Unmount and mount again (a shut-down ext4 comes back, journal replayed). The
        processes using it must be stopped first."""
        self.ns.umount(self.mountpoint)
        self.ns.mount(self.mountpoint, *self.mount_args)


@contextlib.contextmanager
def private_disk(path: Path, mount_args: list[str],
                 ns: PrivateMounts | None = None) -> Iterator[Disk]:
    """Mount (`mount *mount_args`) inside a private mount namespace (a new one unless
    `ns` is given) and make `path` a symlink to it; everything undone on exit."""
    own = ns is None
    ns = ns or PrivateMounts()
    mountpoint = path.with_name(f".{path.name}.mnt")
    try:
        ns.mount(mountpoint, *mount_args)
        _link(path, ns.view(mountpoint))
        yield Disk(path, mountpoint, ns, mount_args)
    finally:
        try:
            if mountpoint in ns.mounts and ns.proc.poll() is None:
                with contextlib.suppress(RuntimeError):
                    ns.umount(mountpoint)
        finally:
            if own:
                ns.close()
            if path.is_symlink():
                path.unlink()
            with contextlib.suppress(OSError):
                mountpoint.rmdir()


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "4m") reached at ``path``: writes past it fail with
    ENOSPC. Mounted in a private mount namespace (see the module doc)."""
    with private_disk(path, ["-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs"]) as d:
        yield d.path


def make_ext4_image(image: Path, size_mb: int) -> None:
    """A sparse file of `size_mb` with an ext4 on it (no root reserve: fill takes all)."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("needs mkfs.ext4 (e2fsprogs)")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))


@contextlib.contextmanager
def ext4_disk(path: Path, image: Path, size_mb: int = 32,
              ns: PrivateMounts | None = None) -> Iterator[Disk]:
    """An ext4 on a loop device (autoclear: detached when unmounted or when the
    namespace ends), reached at ``path``; the image file is removed on exit."""
    need_root_mounts()
    make_ext4_image(image, size_mb)
    try:
        with private_disk(path, ["-o", "loop", str(image)], ns) as d:
            yield d
    finally:
        image.unlink(missing_ok=True)


@contextlib.contextmanager
def loop_ext4(path: Path, image: Path, size_mb: int = 32) -> Iterator[Path]:
    """An ext4 filesystem on a loop device, reached at ``path`` (see :func:`shutdown_fs`)."""
    with ext4_disk(path, image, size_mb) as d:
        yield d.path


def shutdown_fs(mountpoint: Path) -> None:
    """Shut the ext4 filesystem down: from now on every I/O on it fails with EIO."""
    fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)


def fill(mountpoint: Path, name: str = "filler") -> Path:
    """Take every free byte of the filesystem; returns the filler (unlink it to free).
    Bulk by fallocate (instant, and the loop image stays sparse), the rest by writes."""
    filler = mountpoint / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        chunk = 16 << 20
        for _ in range(4096):  # bounded: 64 GiB at most, far beyond any test disk
            try:
                os.posix_fallocate(fd, os.fstat(fd).st_size, chunk)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EOPNOTSUPP, errno.EFBIG):
                    raise
                if chunk <= 64 << 10 or e.errno != errno.ENOSPC:
                    break
                chunk //= 4
        for size in (64 << 10, 4 << 10, 512, 1):  # then what fallocate could not place
            for _ in range(1 << 12):
                try:
                    os.write(fd, b"\0" * size)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def free(filler: Path) -> None:
    """Delete what `fill` made, durably: unlink, then fsync the directory.

    Without the fsync the unlink lives only in ext4's running transaction (committed
    every 5 s, or by someone's fsync). A `shutdown_fs` before that flushes nothing
    (NOLOGFLUSH), so the remount replays the journal without the unlink and the
    filler is back: the disk is full again for good (seed 1796608579: a disk_enospc
    heal on c1, then disk_eio on c1 0.9 s later; c1 never persisted again and the run
    did not converge)."""
    try:
        filler.unlink()
    except FileNotFoundError:
        return
    fd = os.open(filler.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def root_mounts_under(path: Path) -> list[str]:
    """Mount points in this process's mount namespace at or below `path` (a leak check)."""
    base = str(path.absolute())
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].encode().decode("unicode_escape")
        if mnt == base or mnt.startswith(base + "/"):
            out.append(mnt)
    return out


def loop_devices_of(image: Path) -> list[str]:
    """Loop devices backed by `image` (a leak check)."""
    r = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True,
                       timeout=30)
    return [ln.split(":")[0] for ln in r.stdout.splitlines() if ln.strip()]
