"""Soak: no false failover, no lapse of a live active's lease, under CPU hogs on every
core plus memory pressure.

The demo's topology with vnfha's default lease settings runs for --minutes while
one busy-looping process per --hogs competes for the CPU and (unless
--no-memory) a memory hog keeps a large share of MemAvailable allocated and keeps
touching every page of it, while a page-cache churner rewrites and rereads a file
(evicting the page cache everyone else runs from). Everything is bounded: the hogs
stop at the end of the run; the memory hog takes at most --mem-share of
MemAvailable, never leaves less than --mem-leave-gib free (it frees memory when
others need it) and stops at --mem-max-gib; the churn file is --churn-mib.
Counts what must stay zero: lease lapses of the live active (its agent dropping
the role because its lease expired, a coordinator seeing its lease expire, or its
guardian removing the VIP because no renewal came before the lease end),
false failovers (promotions and demotions after the start), agent role drops, and
client probes that failed. Prints JSON. Needs root.

    .venv/bin/python bench/soak.py [--minutes 10] [--hogs 2] [--mem-share 0.6]
        [--mem-leave-gib 4] [--mem-max-gib 16] [--churn-mib 1024] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import mmap
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.netlab import Lab
from vnfha_lab.probe import load_attempts

PAGE = 4096
CHUNK = 256 << 20  # the memory hog grows and shrinks by this much


def _ordinary() -> None:
    """Run the load at the ordinary priority (nice 0), whatever `nice` started the bench."""
    os.setpriority(os.PRIO_PROCESS, 0, 0)


def _hog(stop_at: float) -> None:
    _ordinary()
    x = 0
    while time.time() < stop_at:  # bounded by time
        x += 1


def log_lines(path: Path) -> list[dict[str, Any]]:
    """A process's JSON log lines (others skipped)."""
    out = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out.append(doc)
    return out


def mem_available() -> int:
    """MemAvailable in bytes (/proc/meminfo)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def mem_target(available: int, share: float, leave: int, cap: int) -> int:
    """How much the memory hog may hold (pure): a share of what is available, never
    leaving less than `leave` free, at most `cap`, in whole chunks."""
    want = min(int(available * share), available - leave, cap)
    return max(0, want // CHUNK * CHUNK)


def _memory_hog(stop_at: float, share: float, leave: int, cap: int, report: Any) -> None:
    """Allocate up to `mem_target` and keep writing to every page of it until `stop_at`;
    if the free memory falls below `leave` (others need it), give a chunk back at once."""
    _ordinary()
    chunks: list[mmap.mmap] = []
    target = mem_target(mem_available(), share, leave, cap)
    peak = passes = 0
    began, full_after = time.time(), None
    while time.time() < stop_at:  # bounded by time; each step by the chunk count
        avail = mem_available()
        if avail < leave and chunks:
            chunks.pop().close()  # others need it: give it back at once
            continue
        if len(chunks) * CHUNK < target and avail - CHUNK >= leave:
            # populated by the kernel: resident at once, and kept hot below
            chunks.append(mmap.mmap(-1, CHUNK, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                                    | getattr(mmap, "MAP_POPULATE", 0)))
            peak = max(peak, len(chunks) * CHUNK)
            if full_after is None and peak >= target:
                full_after = round(time.time() - began, 1)
        for c in chunks:  # write to every page: all of it stays resident and in use
            memoryview(c)[::PAGE] = bytes([passes & 0xFF]) * (CHUNK // PAGE)
        passes += 1
    report.put({"memory_hog_peak_gib": round(peak / (1 << 30), 2),
                "memory_hog_target_gib": round(target / (1 << 30), 2),
                "memory_hog_passes": passes, "memory_hog_full_after_s": full_after})


def _cache_churn(stop_at: float, path: str, size: int, report: Any) -> None:
    """Rewrite and reread a `size` file until `stop_at`: the page cache keeps turning
    over, so file pages of every other process (their code, libraries) are evicted."""
    _ordinary()
    block = b"\xa5" * (1 << 20)
    rounds = 0
    try:
        while time.time() < stop_at:
            with open(path, "wb") as f:
                for _ in range(size >> 20):
                    if time.time() >= stop_at:
                        break
                    f.write(block)
            with open(path, "rb") as f:
                while f.read(1 << 20) and time.time() < stop_at:
                    pass
            rounds += 1
    finally:
        Path(path).unlink(missing_ok=True)
        report.put({"cache_churn_rounds": rounds})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--hogs", type=int, default=2, help="CPU hogs (2: both cores)")
    ap.add_argument("--mem-share", type=float, default=0.6,
                    help="share of MemAvailable the memory hog takes")
    ap.add_argument("--mem-leave-gib", type=float, default=4.0,
                    help="free memory the hog always leaves (>= 2)")
    ap.add_argument("--mem-max-gib", type=float, default=16.0)
    ap.add_argument("--churn-mib", type=int, default=1024, help="page-cache churn file")
    ap.add_argument("--no-memory", action="store_true", help="CPU hogs only")
    ap.add_argument("--ttl", type=float, default=0.25)
    ap.add_argument("--interval", type=float, default=0.06)
    args = ap.parse_args()
    if not 0 < args.mem_share <= 0.9:
        ap.error("--mem-share must be in (0, 0.9]")
    if args.mem_leave_gib < 2:
        ap.error("--mem-leave-gib must be at least 2 (the machine must not run out)")
    if args.minutes <= 0 or args.hogs < 0 or args.churn_mib < 0:
        ap.error("--minutes must be > 0, --hogs and --churn-mib >= 0")
    # SIGTERM unwinds like Ctrl-C, so the lab's namespaces and processes are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seconds = args.minutes * 60
    root = Path(tempfile.mkdtemp(prefix="vnfha-soak-"))
    with Lab() as lab:
        c = LabCluster(lab, root, ttl=args.ttl, interval=args.interval)
        hogs: list[mp.Process] = []
        try:
            c.start_pair()
            time.sleep(1)
            start = time.time()
            epoch = c.group().epoch
            stop_at = start + seconds
            report: Any = mp.Queue()
            hogs += [mp.Process(target=_hog, args=(stop_at,)) for _ in range(args.hogs)]
            if not args.no_memory:
                hogs.append(mp.Process(target=_memory_hog, args=(
                    stop_at, args.mem_share, int(args.mem_leave_gib * (1 << 30)),
                    int(args.mem_max_gib * (1 << 30)), report)))
                if args.churn_mib:
                    hogs.append(mp.Process(target=_cache_churn, args=(
                        stop_at, str(root / "churn.bin"), args.churn_mib << 20, report)))
            for h in hogs:
                h.start()
            lowest_free = mem_available()
            checker = VipChecker(c, interval=0.05, max_seconds=seconds + 10).start()
            probe = c.start_probe(duration=seconds, interval=0.05, timeout=0.2)
            while time.time() < stop_at:  # bounded: the run's length
                lowest_free = min(lowest_free, mem_available())
                time.sleep(1.0)
            loads = {}
            for h in hogs:
                h.join(timeout=30)
                if h.is_alive():
                    h.kill()
                    h.join(timeout=5)
            while not report.empty():
                loads.update(report.get(timeout=1))
            log = checker.stop()
            g = c.group()
            changes = [e for e in c.events() if e.time.ToNanoseconds() / 1e9 > start
                       and e.kind in ("promoted", "demoted", "health_changed")]
            drops = [r for vm in c.vms for r in c.role_changes(vm)
                     if r["ts"] > start and r["role"] != "active"]
            attempts = [a for a in load_attempts(str(probe)) if a.at > start]
            lapses = [r for r in drops if r.get("reason") == "lease expired"]
            lapses_seen = [e for e in changes if "lease expired" in e.reason]
            guardian = [x for vm in c.vms for x in log_lines(root / f"{vm}-agent.log")
                        if x.get("ts", 0) > start and x.get("msg") == "guardian removed VIP"]
            failovers = [e for e in changes if e.kind in ("promoted", "demoted")]
            print(json.dumps({
                "benchmark": "soak", "minutes": args.minutes, "cpu_hogs": args.hogs,
                "memory_pressure": not args.no_memory, **loads,
                "lowest_mem_available_gib": round(lowest_free / (1 << 30), 2),
                # the agent dropping its role (lease expired), a coordinator seeing the
                # lease expire, or the guardian removing the VIP at the lease end
                "lease_lapses_live_active": len(lapses) + len(lapses_seen) + len(guardian),
                "guardian_vip_removals": [f"{x['ts']:.3f} {x.get('reason', '')}"
                                          for x in guardian],
                "false_failovers": len(failovers),
                "ttl_s": args.ttl, "keepalive_interval_s": args.interval,
                "epoch_before": epoch, "epoch_after": g.epoch, "active_after": g.active,
                "role_events_after_start": [f"{e.kind} {e.member} {e.reason}"
                                            for e in changes],
                "agent_role_drops": len(drops),
                "probes": len(attempts), "probe_failures": sum(not a.ok for a in attempts),
                "max_vip_holders": log.max_holders,
            }, indent=2))
            return 0 if not changes and not drops else 1
        except Exception as e:
            print(f"error: {e}\n{c.logs_tail()}", file=sys.stderr)
            return 1
        finally:
            for h in hogs:  # an error above must not leave a hog running
                if h.is_alive():
                    h.kill()
                    h.join(timeout=5)
            c.close()


if __name__ == "__main__":
    sys.exit(main())
