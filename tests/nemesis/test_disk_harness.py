"""The disk-fault harness itself (tests/support_disk.py, tests/nemesis/disk.py): faults
that work on a busy filesystem, heals that work, and nothing left behind on any path.

The old harness moved a coordinator's data dir onto a tmpfs and back; with the disk
in use the move back failed (EBUSY), the node lost its data dir and a tmpfs stayed
mounted. These tests use real mounts (root) and a real process holding files open.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import wait_for
from support_disk import (
    PrivateMounts,
    ext4_disk,
    fill,
    loop_devices_of,
    open_namespaces,
    root_mounts_under,
    shutdown_fs,
    small_tmpfs,
)

from .disk import disk_enospc
from .runner import run_nemesis

pytestmark = pytest.mark.slow


def holder_gone(ns: PrivateMounts) -> bool:
    return ns.proc.poll() is not None and not Path(f"/proc/{ns.proc.pid}/ns").exists()


def open_writer(path: Path) -> subprocess.Popen[str]:
    """A process (bounded: 60 s) that keeps a file on `path` open, as a node does."""
    return subprocess.Popen([sys.executable, "-c",
                             "import sys, time; f = open(sys.argv[1], 'ab'); "
                             "print('open', flush=True); time.sleep(60)",
                             str(path / "journal")], stdout=subprocess.PIPE, text=True)


def test_nothing_is_mounted_in_our_namespace_and_everything_goes_on_exit(tmp_path: Path):
    image = tmp_path / "c1.img"
    with ext4_disk(tmp_path / "data" / "c1", image, 16) as disk:
        ns = disk.ns
        assert disk.path.is_symlink() and (disk.path / "lost+found").is_dir()
        (disk.path / "x").write_text("kept")
        assert not root_mounts_under(tmp_path), "mounted in the root namespace"
        assert loop_devices_of(image), "the ext4 is on a loop device"
    assert not root_mounts_under(tmp_path)
    assert not (tmp_path / "data" / "c1").exists()
    assert not image.exists()
    wait_for(lambda: holder_gone(ns), 10, what="the namespace holder exits")


def test_enospc_fill_and_free_while_a_process_holds_the_disk(tmp_path: Path):
    with small_tmpfs(tmp_path / "data" / "c2", "4m") as path:
        w = open_writer(path)
        try:
            assert w.stdout is not None and w.stdout.readline().strip() == "open"
            filler = fill(path)
            with pytest.raises(OSError) as e:
                (path / "more").write_bytes(b"x" * 8192)
            assert e.value.errno == errno.ENOSPC
            filler.unlink()  # the heal: no unmount, no move, the user keeps its files
            (path / "more").write_bytes(b"x" * 8192)
        finally:
            w.kill()
            w.wait()
    assert not root_mounts_under(tmp_path)


def test_eio_then_remount_keeps_what_was_fsynced_and_waits_for_a_busy_user(
        tmp_path: Path):
    image = tmp_path / "c3.img"
    with ext4_disk(tmp_path / "data" / "c3", image, 16) as disk:
        f = disk.path / "journal"
        fd = os.open(f, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"durable")
        os.fsync(fd)
        os.close(fd)
        w = open_writer(disk.path)
        assert w.stdout is not None and w.stdout.readline().strip() == "open"
        shutdown_fs(disk.path)
        with pytest.raises(OSError) as e:
            f.read_bytes()
        assert e.value.errno == errno.EIO
        try:
            with pytest.raises(RuntimeError, match=f"open by pids .*{w.pid}"):
                disk.ns.umount(disk.mountpoint, timeout=0.5)  # busy: a clear error
        finally:
            w.kill()
            w.wait()
        disk.remount()  # the user gone, the heal works
        assert f.read_bytes() == b"durable"
        assert len(loop_devices_of(image)) == 1
    assert not root_mounts_under(tmp_path)
    wait_for(lambda: not loop_devices_of(image), 10, what="the loop device detached")


def test_a_healed_enospc_stays_healed_when_the_disk_fails_right_after(tmp_path: Path):
    """Seed 1796608579 (disk kinds, 8 faults): disk_enospc on c1 healed, then disk_eio
    on c1 0.9 s later. The heal's unlink was still only in ext4's running transaction,
    the shutdown flushed nothing, and the remount replayed the journal without it: the
    filler was back, c1 could never persist again and the run did not converge. The
    heal must free the space durably."""
    with ext4_disk(tmp_path / "data" / "c1", tmp_path / "c1.img", 256) as disk:
        node = open_writer(disk.path)  # the running coordinator, holding its journal
        try:
            assert node.stdout is not None and node.stdout.readline().strip() == "open"
            nem = SimpleNamespace(disks={"c1": disk},
                                  cluster=SimpleNamespace(procs={"c1": node}))
            heal = disk_enospc(nem, "c1")  # type: ignore[arg-type]
            fd = os.open(disk.path, os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(fd)  # the node's own fsyncs commit the filler, as in the run
            os.close(fd)
            heal()
            assert node.poll() is None, "the heal must not restart a running node"
            shutdown_fs(disk.path)  # the next fault, before ext4's own commit
        finally:
            node.kill()
            node.wait()
        disk.remount()
        assert not (disk.path / "filler").exists(), "the freed filler came back"
        (disk.path / "more").write_bytes(b"x" * (1 << 20))  # the node's 1 MiB headroom


def test_an_exception_inside_still_cleans_up(tmp_path: Path):
    image = tmp_path / "c4.img"
    seen: list[PrivateMounts] = []
    with pytest.raises(KeyError):
        with ext4_disk(tmp_path / "data" / "c4", image, 16) as disk:
            seen.append(disk.ns)
            fill(disk.path)
            raise KeyError("boom")
    assert not root_mounts_under(tmp_path) and not image.exists()
    wait_for(lambda: holder_gone(seen[0]), 10, what="the namespace holder exits")


def test_a_run_cut_short_leaves_nothing_behind(tmp_path: Path):
    """A process that mounts and then dies by SIGKILL (no finally, no atexit): its
    namespace holder dies with it, so the mount and the loop device go too."""
    image = tmp_path / "c5.img"
    script = (
        "import os, signal, sys; sys.path.insert(0, sys.argv[3]); "
        "from pathlib import Path; from support_disk import ext4_disk; "
        "cm = ext4_disk(Path(sys.argv[1]), Path(sys.argv[2]), 16); d = cm.__enter__(); "
        "(d.path / 'x').write_text('x'); print(d.ns.proc.pid, flush=True); "
        "os.kill(os.getpid(), signal.SIGKILL)")
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "data" / "c5"),
                        str(image), str(Path(__file__).resolve().parents[1])],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == -9, r.stderr
    holder = int(r.stdout.split()[0])
    wait_for(lambda: not Path(f"/proc/{holder}").exists(), 10, what="the holder exits")
    wait_for(lambda: not loop_devices_of(image), 10, what="the loop device detached")
    assert not root_mounts_under(tmp_path)


def test_nemesis_disk_faults_heal_and_leave_nothing_behind(tmp_path: Path):
    """A short seeded run of only the disk kinds (~1.5 min): every fault injected and
    healed without a harness error, every property kept, and afterwards no mount, no
    loop device and no namespace holder left. Seed: NEMESIS_SEED (printed)."""
    seed = int(os.environ.get("NEMESIS_SEED") or time.time())
    print(f"nemesis seed {seed}")
    result = run_nemesis(tmp_path, seed, 8, ["disk_enospc", "disk_eio"])
    print(result.report())
    assert len(result.history.faults) == 8, result.report(schedule=True)
    heal_errors = [e for e in result.errors if not e.startswith("logs kept")]
    assert not heal_errors, result.report(schedule=True)
    assert result.ok, result.report(schedule=True)
    assert not root_mounts_under(tmp_path)
    for cid in ("c1", "c2", "c3"):
        assert not loop_devices_of(tmp_path / "disks" / f"{cid}.img")
    assert not open_namespaces(), "a mount namespace holder is still running"
