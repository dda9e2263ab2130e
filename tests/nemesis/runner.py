"""Runs a seeded fault schedule over one LabCluster and records the whole history.

The cluster: 3 coordinators, 2 VMs (agent, TCP service, the sample kvstore in
sync mode), one active/standby group with a VIP, a client that probes the
service through the VIP and writes to the kvstore through it. Recorders run
for the whole run, each bounded in time and count: the VIP checker (every VM's
addresses, overlap-proved), one GetStatus poller per coordinator, the writer
and the probe process. Steps run one after another; each fault is healed after
its duration, and a `finally` heals whatever is still open, waits for the
cluster to converge and reads the store back. The checker (history.py) then
judges the history; the runner never judges.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vnfha_lab.labcluster import KV_PORT, SYNC_PORT, LabCluster, VipChecker
from vnfha_lab.netlab import Lab, in_netns
from vnfha_lab.probe import load_attempts

from . import history as H
from . import metrics
from .faults import FAULTS, SETUP, Heal
from .schedule import Step, describe, make_schedule

log = logging.getLogger("vnfha.nemesis")

PRIORITY = {"vm1": 200, "vm2": 100}
MAX_WRITES = 200_000
KEYS = 1000  # ~20 KB of state: far below state.checkpoint_max_bytes (256 KiB)


@dataclass
class RunResult:
    seed: int
    steps: list[Step]
    kinds: list[str]
    history: H.History
    verdicts: dict[str, list[str]]
    figures: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # harness trouble (not verdicts)

    @property
    def ok(self) -> bool:
        return H.ok(self.verdicts)

    def report(self, schedule: bool = False) -> str:
        lines = [f"nemesis seed {self.seed}: {len(self.history.faults)} faults injected, "
                 f"{'OK' if self.ok else 'VIOLATIONS'}"]
        for name in H.PROPERTIES:
            v = self.verdicts.get(name, [])
            lines.append(f"  {name:<17} {'ok' if not v else f'{len(v)} violation(s)'}")
            lines.extend(f"      {x}" for x in v[:10])
        lines.extend(f"  harness: {e}" for e in self.errors)
        if schedule or not self.ok:
            lines.append(describe(self.seed, self.steps, self.kinds))
        return "\n".join(lines)


class Nemesis:
    def __init__(self, lab: Lab, root: Path, seed: int, faults: int, kinds: list[str],
                 ttl: float = 0.3, interval: float = 0.075, settle: float = 10.0,
                 probe_every: int = 10) -> None:
        unknown = [k for k in kinds if k not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; known: {sorted(FAULTS)}")
        self.seed = seed
        self.kinds = kinds
        self.steps = make_schedule(seed, faults, [FAULTS[k][0] for k in kinds])
        self.cluster = LabCluster(lab, root, ttl=ttl, interval=interval)
        self.root = root
        self.settle = settle
        self.probe_every = probe_every
        self.history = H.History()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # Generous bound on the whole run for every recorder: steps plus settling.
        self.bound = 120.0 + sum(s.duration + s.rest + 4.0 for s in self.steps)
        # What the kinds' setup hooks made (tests/nemesis/disk.py: each coordinator's
        # disk) and undo: closed by `close` after every process is stopped.
        self.disks: dict[str, Any] = {}
        self.cleanup = contextlib.ExitStack()

    def close(self) -> None:
        """Stop every process, then undo what the setup hooks made (unmount the disks)."""
        self._stop.set()
        try:
            self.cluster.close()
        finally:
            self.cleanup.close()

    # -- targets and helpers used by the faults ---------------------------------------------

    def resolve(self, target: str) -> str:
        c = self.cluster
        if target == "leader":
            return c.leader() or c.cids[0]
        if target in ("active-vm", "standby-vm"):
            g = c.group()
            active = f"vm{g.active.split('-')[1]}" if g is not None and g.active else "vm1"
            return active if target == "active-vm" else next(v for v in c.vms if v != active)
        return target

    def restart_agent(self, vm: str, graceful: bool = False) -> None:
        """Start `vm`'s agent; with `graceful`, first stop the running one with SIGTERM
        (it releases its role and VIP) and wait for it (bounded)."""
        name = f"{vm}-agent"
        proc = self.cluster.procs.get(name)
        if graceful and proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
                self.cluster.procs.pop(name, None)
            except subprocess.TimeoutExpired:
                self.cluster.kill(name)
        self.cluster.start_agent(vm, PRIORITY[vm])

    # -- setup -------------------------------------------------------------------------------

    def start(self) -> None:
        c = self.cluster
        for hook in dict.fromkeys(SETUP[k] for k in self.kinds if k in SETUP):
            hook(self)
        c.start_pair()
        c.start_kvstore("vm1")
        c.start_kvstore("vm2")
        c.wait(lambda: c.vip_holders() == {"vm1"}, 15, "the VIP on vm1")
        c.wait(lambda: self._put("warmup", "1", timeout=2.0)[0] is not None, 20,
               "a write acknowledged by vm1 and its standby")
        self.checker = VipChecker(c, interval=0.005, max_seconds=self.bound).start()
        self.probe_out = c.start_probe(duration=self.bound, interval=0.02, timeout=0.05)
        for cid in c.cids:
            self._thread(self._poll_epochs, cid)
        self._thread(self._write_loop_in_client)

    def _thread(self, fn: Any, *args: Any) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True, name=f"nemesis-{fn.__name__}")
        t.start()
        self._threads.append(t)

    # -- recorders ---------------------------------------------------------------------------

    def _poll_epochs(self, cid: str) -> None:
        """Poll `cid`'s GetStatus; record the group's epoch each time it changes."""
        deadline = time.monotonic() + self.bound
        last: int | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            if cid in self.cluster.procs:
                with contextlib.suppress(Exception):
                    g = self.cluster.group(cid)
                    if g is not None and g.epoch != last:
                        last = g.epoch
                        with self._lock:
                            self.history.epochs.append(
                                H.EpochRead(time.time(), cid, g.epoch, g.active))
            self._stop.wait(0.05)

    def _http(self, method: str, path: str, body: str | None,
              timeout: float) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(self.cluster.vip_addr, KV_PORT, timeout=timeout)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
        except (OSError, http.client.HTTPException, ValueError):
            return 0, None
        finally:
            conn.close()

    def _put(self, key: str, value: str, timeout: float = 1.0) -> tuple[int | None, float]:
        """One write from the client namespace: (epoch if acknowledged, start time)."""
        start = time.time()
        code, body = self.cluster.hosts["client"].call(
            self._http, "PUT", f"/kv/{key}", value, timeout, timeout=timeout + 5)
        epoch = body.get("epoch") if code == 200 and isinstance(body, dict) else None
        return epoch, start

    def _write_loop_in_client(self) -> None:
        try:
            in_netns(self.cluster.hosts["client"].netns, self._write_loop,
                     timeout=self.bound + 30)
        except Exception as e:  # recorded: a dead writer would make the run vacuous
            self.errors.append(f"writer stopped: {e}")

    def _write_loop(self) -> None:
        deadline = time.monotonic() + self.bound
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline and i < MAX_WRITES:
            # A bounded key space: the sample keeps its state under the checkpoint size
            # limit however long the run; every value is unique (see no_lost_write).
            key, value = f"w{i % KEYS}", f"v{i}"
            start = time.time()
            code, body = self._http("PUT", f"/kv/{key}", value, 1.0)
            epoch = body.get("epoch") if code == 200 and isinstance(body, dict) else None
            with self._lock:
                self.history.writes.append(H.Write(start, time.time(), key, value,
                                                   int(epoch) if epoch is not None else None))
            if epoch is None:
                self._stop.wait(0.02)
            i += 1

    def stale_probe(self) -> None:
        """From the standby's VM, send as the epoch below the current one to the active's
        receiver, the queue and the checkpoint store; record how each was answered."""
        c = self.cluster
        g = c.group()
        if g is None or g.epoch < 2 or not g.active:
            return
        active = f"vm{g.active.split('-')[1]}"
        standby = next(v for v in c.vms if v != active)
        r = c.hosts[standby].run(
            [sys.executable, "-m", "vnfha.agents.samples.kvstore", "stale-probe",
             "--group", "web", "--epoch", str(g.epoch - 1), "--count", "2",
             "--peer", f"{c.hosts[active].ip4}:{SYNC_PORT}", "--sequence", "1",
             "--coordinators", ",".join(c.api[x] for x in c.cids)], timeout=60)
        try:
            results = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.errors.append(f"stale probe gave no answer: {r.stderr.strip()[-200:]}")
            return
        self.history.probes.append(H.StaleProbe(time.time(), g.epoch - 1, results))

    # -- the run -----------------------------------------------------------------------------

    def settled(self) -> bool:
        """Every coordinator answers with the group at one epoch, the group has an
        active, and exactly its VM holds the VIP."""
        c = self.cluster
        groups = [c.group(cid) if cid in c.procs else None for cid in c.cids]
        if any(g is None for g in groups) or len({g.epoch for g in groups}) != 1:
            return False
        g = groups[0]
        if not g.active or g.releasing:
            return False
        active = f"vm{g.active.split('-')[1]}"
        return c.vip_holders() == {active}

    def run(self) -> RunResult:
        open_heals: list[tuple[Step, str, float, Heal]] = []
        try:
            self.start()
            for step in self.steps:
                target = self.resolve(step.target)
                at = time.time()
                try:
                    heal = FAULTS[step.kind][1](self, target)
                except Exception as e:  # the harness's trouble, not a verdict: go on
                    self.errors.append(f"inject #{step.index} {step.kind}({target}): {e}")
                    continue
                open_heals.append((step, target, at, heal))
                log.info("fault", extra={"step": step.index, "kind": step.kind,
                                         "target": target})
                time.sleep(step.duration)
                open_heals.pop()
                self._heal(step, target, at, heal)
                time.sleep(step.rest)
                with contextlib.suppress(TimeoutError):
                    self.cluster.wait(self.settled, self.settle, "settled")
                if self.probe_every and (step.index + 1) % self.probe_every == 0:
                    self.stale_probe()
        finally:
            for step, target, at, heal in reversed(open_heals):
                self._heal(step, target, at, heal)
            self.cluster.lab.heal()
            self._converge()
        return self._finish()

    def _heal(self, step: Step, target: str, at: float, heal: Heal) -> None:
        try:
            heal()
        except Exception as e:
            self.errors.append(f"heal of #{step.index} {step.kind}({target}) failed: {e}")
        self.history.faults.append(H.FaultEvent(at, time.time(), step.kind, target))

    def _converge(self) -> None:
        """Every process back, one active, every member healthy, one VIP holder, and a
        write acknowledged again: then read the whole store."""
        c = self.cluster
        for cid in c.cids:
            if cid not in c.procs:
                c.start_coordinator(cid)
        for vm in c.vms:
            if f"{vm}-agent" not in c.procs:
                self.restart_agent(vm)
        try:
            c.wait(lambda: (g := c.group()) is not None and len(g.members) == 2
                   and all(m.health == 2 for m in g.members) and self.settled(), 60,
                   "one active, both members healthy, one VIP holder")
            c.wait(lambda: self._put("converged", "1", timeout=2.0)[0] is not None, 30,
                   "a write acknowledged after healing")
            self.history.converged = H.Converged(time.time(), True)
        except TimeoutError as e:
            g = c.group()
            self.history.converged = H.Converged(
                time.time(), False, f"{e}; group={g and (g.active, g.epoch)}, "
                f"holders={sorted(c.vip_holders())}")
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        with contextlib.suppress(Exception):
            self.stale_probe()
        data: dict[str, str] | None = None
        for _ in range(20):  # bounded: ~20 s at most
            code, body = c.hosts["client"].call(self._http, "GET", "/kv", None, 3.0,
                                                timeout=10)
            if code == 200 and isinstance(body, dict):
                data = body
                break
            time.sleep(0.5)
        self.history.final = H.FinalRead(time.time(), data)

    def _finish(self) -> RunResult:
        holder_log = self.checker.stop() if hasattr(self, "checker") else None
        if holder_log is not None:
            self.history.holders = [H.HolderChange(t, h) for t, h in holder_log.changes]
        verdicts = H.check(self.history)
        figures: dict[str, Any] = H.summary(self.history)
        if hasattr(self, "probe_out") and self.probe_out.exists():
            attempts = load_attempts(str(self.probe_out))
            windows = metrics.outage_windows(attempts)
            fails = metrics.failovers(attempts)
            figures["probe_attempts"] = len(attempts)
            figures["failover_s"] = metrics.spread([f[1] for f in fails])
            figures["outage_s"] = metrics.spread([w[1] for w in windows])
            figures["outage_windows_top"] = [
                {"at": round(s, 3), "s": round(d, 3),
                 "faults": H.faults_around(self.history, s, slack=1.0)}
                for s, d in sorted(windows, key=lambda w: -w[1])[:5]]
        figures["vip_polls"] = holder_log.polls if holder_log else 0
        return RunResult(self.seed, self.steps, self.kinds, self.history, verdicts, figures,
                         self.errors)


def run_nemesis(root: Path, seed: int, faults: int, kinds: list[str],
                **kw: Any) -> RunResult:
    """One whole run in a fresh lab, torn down before returning."""
    with Lab() as lab:
        nem = Nemesis(lab, root, seed, faults, kinds, **kw)
        try:
            result = nem.run()
        except BaseException:
            print(describe(seed, nem.steps, kinds), file=sys.stderr)
            print(nem.cluster.logs_tail(20), file=sys.stderr)
            raise
        finally:
            nem.close()
        if not result.ok:
            result.errors.append(f"logs kept in {root}")
        return result
