"""The leader's loop: observe, decide, commit. The only caller of `decide`.

Runs on every coordinator but acts only while its store says it leads. It
wakes on a timer and whenever something changed (a keepalive report, a
commit), so a release confirmation or a switchover is acted on at once.

Before a node counts as lost, a majority of coordinators must agree they have
not acknowledged it for one TTL (quorum leases, docs/design.md): the agent's
lease was renewed by a majority, so any majority contains one that would know.
A coordinator whose own event loop is overloaded, the leader included, vouches only
for silences of several TTLs (coordinator/overload.py): its figures measure its lag;
except for fast-path silences, which are counted up to the intake's read watermark and
are exact whatever the load (leases.LeaseTable.vouched).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vnfha.coordinator import commands as C
from vnfha.coordinator import core, expiry
from vnfha.coordinator.commands import Command
from vnfha.coordinator.decide import Policy
from vnfha.coordinator.decide_dirty import DirtyTracker
from vnfha.coordinator.lbhealth import LbHealthTable
from vnfha.coordinator.leader_loop import LeaderLoop
from vnfha.coordinator.leases import LeaseTable, PeerView
from vnfha.coordinator.store.base import OutcomeUnknown, Store, StoreError

log = logging.getLogger("vnfha.control")

#: Nodes named one per line when leases expire in one round; the rest are counted.
EXPIRY_LOG_NODES = 20

# peer id -> callable(nodes, timeout) -> its view (or just {node: age_seconds});
# raises on failure.
PeerAgeFn = Callable[[list[str], float], "PeerView | dict[str, float]"]


def entries(commands: list[Command]) -> list[Command]:
    """A decide round as replicated entries: one `batch` per up to MAX_BATCH_ITEMS
    commands, in order (a single command goes as itself). One entry per round means a
    lost node's every promotion commits at once instead of one Raft round trip (or one
    etcd transaction) after another; the batch is all-or-nothing, so what commits is
    exactly what decide computed on its scratch state, or nothing (commands.batch)."""
    if len(commands) <= 1:
        return list(commands)
    step = C.MAX_BATCH_ITEMS
    return [C.batch(commands[i:i + step]) for i in range(0, len(commands), step)]


class Controller:
    def __init__(self, store: Store, leases: LeaseTable, policy: Policy, interval: float,
                 peers: dict[str, PeerAgeFn], quorum: int,
                 clock: Callable[[], float] = time.monotonic,
                 submit_timeout: float = 2.0, lb_health: LbHealthTable | None = None,
                 full_sweep_every: int = 20,
                 overloaded: Callable[[float], bool] | None = None) -> None:
        self._store = store
        # This coordinator's own loop lags (overload.LoopLag.overloaded): it vouches only
        # for long silences (leases.expiry_votes).
        self._overloaded = overloaded or (lambda now: False)
        self._leases = leases
        self._policy = policy
        self._interval = interval
        self._peers = peers
        self._quorum = quorum
        self._clock = clock
        self._submit_timeout = submit_timeout
        self._lb_health = lb_health
        self._loop = LeaderLoop("controller", self.step, store.is_leader, self._next_wait,
                                log, on_error=self._round_failed, clock=clock)
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(peers)),
                                        thread_name_prefix="peer-ages")
        self.rounds = 0
        self.metrics: Any = None  # a CoordinatorMetrics (coordinator/metrics.py), if served
        # Rounds decide only the groups whose inputs changed; every `full_sweep_every`
        # rounds (1 s at the default 20 Hz) and after any failed commit, all of them.
        self._dirty = DirtyTracker(full_sweep_every)
        self._unconfirmed = False  # stale nodes the last round could not yet confirm
        self._overload_seen = False  # the last confirmation met an overloaded voter
        self._peer_overloaded = False  # a peer said so in its lease-age answer
        self._expired_logged: set[str] = set()  # expired nodes already logged as such

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._loop.wake()

    @property
    def running(self) -> bool:
        """Whether the controller's thread runs (coordinator /livez)."""
        return self._loop.running

    def _next_wait(self) -> float:
        """Until the next round: the interval, or sooner for the next lease expiry."""
        now = self._clock()
        return expiry.wake_in(self._interval, self._leases.next_expiry(self._policy.ttl, now),
                              now, self._unconfirmed)

    def _round_failed(self) -> None:
        """A failed round may have left groups undecided: the next one reads them all."""
        self._dirty.force_full()

    def step(self) -> int:
        """One observe-decide-commit round. Returns how many commands were applied."""
        leader_since = self._store.leader_since()
        if leader_since is None:
            return 0
        now = self._clock()
        state = self._store.state()
        # The round itself is pure (coordinator/core.py: the expiry rule and decide);
        # this edge chooses the request ids and wall clock, and asks the peers.
        overloaded = self._overloaded(now)
        self._peer_overloaded = False
        r = core.leader_round(
            state, self._leases, self._policy, now, leader_since, self._quorum,
            self._ask_peers, ids=C.new_rid, at=time.time(),
            lb_down=self._lb_health.down(now) if self._lb_health is not None else None,
            groups=lambda obs: self._dirty.groups(state, obs, now, self._policy),
            overloaded=overloaded)
        commands = r.commands
        self._overload_seen = overloaded or self._peer_overloaded
        # Peers heard the keepalive a moment after us: ask again shortly, for a node we
        # vouched for ourselves (exact fast-path ages do so even while we are
        # overloaded); but not while a peer says it is overloaded (the queries would
        # only add to its load).
        self._unconfirmed = (not self._peer_overloaded
                             and any(n in r.own_votes for n in r.stale if n not in r.expired))
        if self._overload_seen and r.stale:
            log.debug("overloaded coordinators vouch only for long silences",
                      extra={"self": overloaded, "peers_overloaded": self._peer_overloaded})
        # Once per expiry, not per round: a node stays expired every round (20 Hz) until
        # it is heard again, and a lost rack would otherwise log thousands of lines a second.
        newly = sorted(set(r.expired) - self._expired_logged)
        self._expired_logged = set(r.expired)
        lag = self._leases.read_lag(now)
        for node in newly[:EXPIRY_LOG_NODES]:
            # Where the time went (docs/sizing.md): the node's silence as this round
            # counted it, how far the fast path's reading trailed, and the round's cost.
            log.info("node lease expired on a majority of coordinators",
                     extra={"node": node, "votes": r.votes[node], "quorum": self._quorum,
                            "silent_s": round(self._leases.age(node, now), 4),
                            "read_lag_ms": None if lag is None else round(lag * 1000, 1),
                            "round_ms": round((self._clock() - now) * 1000, 1)})
        if len(newly) > EXPIRY_LOG_NODES:
            log.info("more node leases expired on a majority of coordinators",
                     extra={"nodes": len(newly) - EXPIRY_LOG_NODES, "quorum": self._quorum})
        if self.metrics is not None:
            self.metrics.failovers.round(state, r.expired, {
                n: now - self._leases.age(n, now) for n in r.expired}, now)
        self.rounds += 1
        applied = 0
        for entry in entries(commands):
            try:
                result = self._submit(entry)
            except StoreError as e:
                log.warning("could not commit decision; will re-decide",
                            extra={"op": entry["op"], "group": entry.get("group"),
                                   "items": len(entry.get("items", ())), "error": str(e)})
                self._dirty.force_full()
                break
            if not result.get("ok"):
                # The state moved under us (another commit won): decide again.
                log.info("decision refused; will re-decide",
                         extra={"op": entry["op"], "group": entry.get("group"),
                                "items": len(entry.get("items", ())),
                                "error": result.get("error"), "detail": result.get("message")})
                self._dirty.force_full()
                break
            applied += int(result.get("items", 1))
            if self.metrics is not None:  # each decision of the entry (a batch holds many)
                done = self._clock()
                for cmd in entry.get("items", ()) if entry["op"] == "batch" else (entry,):
                    self.metrics.failovers.committed(cmd, state, done)
        if applied:
            self._loop.wake()  # look again right away: one step may enable the next
        return applied

    def _submit(self, cmd: Command) -> dict:
        # Same rid on retry: an unknown outcome is resolved by the dedup memory.
        for attempt in range(3):
            try:
                # Fenced: applied only while this node still leads (store/base.py).
                started = time.monotonic()
                result = self._store.submit_as_leader(cmd, timeout=self._submit_timeout)
                if self.metrics is not None:
                    self.metrics.commit.observe(time.monotonic() - started)
                return result
            except OutcomeUnknown:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _ask_peers(self, stale: list[str]) -> list[PeerView | None]:
        """Each peer's lease ages of the stale nodes and whether its own loop lags
        (PeerService.GetLeaseAges), None for a peer that did not answer in time. With
        no peers: no answers (the quorum is this coordinator alone)."""
        ttl = self._policy.ttl
        futures = {pid: self._pool.submit(fn, stale, min(0.25, ttl / 2))
                   for pid, fn in self._peers.items()}
        answers: list[PeerView | None] = []
        for pid, fut in futures.items():
            try:
                got = fut.result(timeout=min(0.3, ttl))
            except Exception as e:
                log.debug("peer did not answer lease-age query", extra={"peer": pid,
                                                                         "error": str(e)})
                answers.append(None)
                continue
            view = got if isinstance(got, PeerView) else PeerView(ages=got)
            self._peer_overloaded = self._peer_overloaded or view.overloaded
            answers.append(view)
        return answers
