"""The majority-confirmed expiry rule, pure: which nodes a leader may call lost.

Why a module of its own: it is half of the lease safety argument (docs/design.md §3,
"Expiry needs a majority"), and it used to sit inside `Controller._confirm_expired`
next to a thread pool and RPC timeouts. Here it is a function of the ages each
coordinator reports and the clock; `control.py` gathers the ages (its own lease
table, PeerService.GetLeaseAges of the others) and the deterministic simulator
(tests/sim/) feeds it simulated ones.

The rule: a leader looks at a node only once it has not heard it for one TTL itself
(or, its fast-path intake lagging by more than a TTL, might not have) and its own
grace is over (a new leader, and a coordinator that just started
serving, expire nothing for a TTL); it declares the node lost only when a majority
of the cluster's coordinators (itself included) report more than one TTL since they
last acknowledged it. An agent's lease was renewed by a majority, so any expiring
majority contains a coordinator that heard the agent's latest renewal and cannot
report it silent before the agent's own, shorter lease has ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from vnfha.coordinator.leases import PeerView, expiry_votes


def grace_start(leader_since: float, serving_since: float, ttl: float) -> float:
    """From when the leader's own TTL of grace counts: the later of taking over and
    one TTL after it started serving (agents need a moment to notice it is back; a
    restart is not a silence). Graces only ever delay an expiry."""
    return max(leader_since, serving_since + ttl)


def stale(nodes: Iterable[str], age: Callable[[str], float], ttl: float, now: float,
          since: float) -> list[str]:
    """The nodes this leader alone sees silent for more than one TTL, once its grace
    (`since`, from `grace_start`) is over: candidates to ask the others about. `age`
    is asked about every node also during the grace: the lease table dates a
    never-heard node from the first question about it (leases.LeaseTable.age)."""
    silent = [n for n in nodes if age(n) > ttl]
    return silent if now - since > ttl else []


def votes(candidates: Iterable[str],
          peer_answers: Iterable[Mapping[str, float] | PeerView | None],
          ttl: float, own_overloaded: bool = False,
          own_ages: Mapping[str, float] | None = None) -> dict[str, int]:
    """Per candidate, how many coordinators have not heard it for one TTL: this one
    (by `own_ages`, its LeaseTable.vouched ages, if given; else it votes for every
    candidate) plus each peer whose answer says so. A peer that did not answer (None)
    votes for nobody; a node a peer does not mention counts as heard (age 0), the safe
    side. A coordinator flagged overloaded (this one: `own_overloaded`; a peer: its
    answer says so) vouches only for silences beyond leases.OVERLOADED_EXPIRY_TTLS
    TTLs: its ages measure how late it reads, not how long a node was silent (the
    overload rule, leases.expiry_votes). Current coordinators apply that rule per
    node before answering (LeaseTable.vouched: fast-path ages are exact, counted up
    to the intake's read watermark) and raise the flag only when no age is exact."""
    answers = {str(i): (a if a is None or isinstance(a, PeerView) else PeerView(ages=a))
               for i, a in enumerate(peer_answers)}
    return expiry_votes(list(candidates), ttl, own_overloaded, answers, own_ages)


def confirmed(tally: Mapping[str, int], quorum: int) -> frozenset[str]:
    """The nodes a majority of coordinators agree are silent: these may be expired."""
    return frozenset(n for n, v in tally.items() if v >= quorum)


def wake_in(interval: float, next_expiry: float | None, now: float,
            unconfirmed: bool) -> float:
    """How long the leader's loop sleeps: its interval, but wake just after the
    earliest possible expiry, and soon if the last round saw stale nodes a majority
    did not yet confirm (peers heard the same keepalive a moment after us)."""
    timeout = interval
    if next_expiry is not None:
        timeout = min(timeout, max(0.0, next_expiry - now) + 0.002)
    if unconfirmed:
        timeout = min(timeout, 0.005)
    return timeout
