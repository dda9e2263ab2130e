"""What load-balancer agents' own health checks say about pool members.

LB-as-cluster-manager mode (docs/active-active.md): the agent on an LB host reads
HAProxy's server states and reports them with ReportPoolApplied to every
coordinator. Each coordinator keeps the latest word per LB node here; the leader
hands the failing ones to `decide` as observations (Observations.lb_down). A
report older than `max_age` is ignored, so a dead LB cannot pin a member out.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSeen:
    healthy: bool
    detail: str
    at: float  # monotonic arrival


class LbHealthTable:
    def __init__(self, max_age: float = 5.0) -> None:
        self._max_age = max_age
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], dict[str, ServerSeen]] = {}

    def record(self, group: str, lb_node: str, servers: dict[str, tuple[bool, str]],
               now: float) -> bool:
        """Note one LB's view of its servers; True if any member's verdict changed."""
        changed = False
        with self._lock:
            for member, (healthy, detail) in servers.items():
                per_lb = self._seen.setdefault((group, member), {})
                old = per_lb.get(lb_node)
                changed = changed or old is None or old.healthy != healthy
                per_lb[lb_node] = ServerSeen(healthy=healthy, detail=detail, at=now)
        return changed

    def down(self, now: float) -> dict[tuple[str, str], str]:
        """(group, member) -> why, for members a fresh LB report calls unhealthy."""
        out: dict[tuple[str, str], str] = {}
        with self._lock:
            for key, per_lb in self._seen.items():
                bad = [f"{lb}: {s.detail}" for lb, s in sorted(per_lb.items())
                       if not s.healthy and now - s.at <= self._max_age]
                if bad:
                    out[key] = "; ".join(bad)
        return out
