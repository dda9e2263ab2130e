"""Notify hooks run the real command, in order, never two at once."""

from __future__ import annotations

import time
from pathlib import Path

from vnfha.agents.hooks import HookRunner


def test_hooks_run_in_order_one_at_a_time_with_role_and_epoch(tmp_path: Path):
    log = tmp_path / "hook.log"
    script = tmp_path / "hook.sh"
    # Each run notes start and end; a slow first hook must not overlap the second.
    script.write_text(
        "#!/bin/sh\n"
        f'echo "start $1 $2 $3 $4 $VNFHA_ROLE $VNFHA_EPOCH" >> {log}\n'
        '[ "$2" = 1 ] && sleep 0.3\n'
        f'echo "end $1 $2" >> {log}\n')
    script.chmod(0o755)
    runner = HookRunner()
    runner.submit((str(script),), "active", 1, "web", "web-1")
    runner.submit((str(script),), "standby", 1, "web", "web-1")
    runner.submit((str(script),), "active", 2, "web", "web-1")
    runner.stop()  # drains the queue: every submitted hook runs before it returns
    assert log.read_text().splitlines() == [
        "start active 1 web web-1 active 1", "end active 1",
        "start standby 1 web web-1 standby 1", "end standby 1",
        "start active 2 web web-1 active 2", "end active 2",
    ]


def test_failing_hook_does_not_stop_later_ones(tmp_path: Path):
    out = tmp_path / "ran"
    runner = HookRunner()
    runner.submit(("/bin/false",), "active", 1, "web", "m")
    runner.submit(("/bin/sh", "-c", f"echo $VNFHA_ROLE > {out}"), "standby", 2, "web", "m")
    runner.stop()
    assert out.read_text().strip() == "standby"


def test_hung_hook_is_killed_with_its_children_and_reported(tmp_path: Path):
    """A hook that hangs (and forked a child that hangs too) is killed with its whole
    process group after the timeout, the owner is told, and later hooks still run."""
    pidfile = tmp_path / "child.pid"
    out = tmp_path / "ran"
    hung: list[tuple[str, str, str]] = []
    runner = HookRunner(timeout=0.5, on_hung=lambda g, m, why: hung.append((g, m, why)))
    runner.submit(("/bin/sh", "-c", f"sleep 30 & echo $! > {pidfile}; sleep 30"),
                  "active", 1, "web", "web-1")
    runner.submit(("/bin/sh", "-c", f"echo $VNFHA_ROLE > {out}"), "standby", 1, "web", "web-1")
    runner.stop(timeout=10)
    assert len(hung) == 1 and hung[0][:2] == ("web", "web-1") and "hung" in hung[0][2]
    assert out.read_text().strip() == "standby"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.02)
    assert not _alive(child), "the hook's child survived"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
