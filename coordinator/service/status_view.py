"""Facts `vnfha status` shows that the state does not store directly: why each
member of an active-active pool is out of service.

The pool itself only says *who* is out. The reason was written into the
`excluded` event (and, for failures, the recovery record), and what keeps the
member out now follows from the same committed facts that decide whether it may
rejoin (`pool_state.in_service_eligible`). Pure: state in, plain data out.
"""

from __future__ import annotations

from dataclasses import dataclass

from vnfha.coordinator.model import ClusterState, Group
from vnfha.coordinator.pool_state import OPEN, in_service_eligible


@dataclass(frozen=True)
class Excluded:
    member: str
    node: str
    version: int  # pool version that excluded it; 0 if unknown
    reason: str  # why it was excluded; "" if unknown
    blocked_by: str  # what keeps it out now; "" if nothing committed does


def _last_exclusions(state: ClusterState, group: str,
                     members: set[str]) -> dict[str, tuple[int, str]]:
    """Per member, its latest `excluded` event (version, reason), unless it was admitted
    after it; a member whose events have left the kept window is simply absent."""
    found: dict[str, tuple[int, str]] = {}
    if not members:
        return found
    settled: set[str] = set()
    for e in reversed(state.events):
        if e.group != group or e.member not in members or e.member in settled:
            continue
        if e.kind == "excluded":
            found[e.member] = (e.epoch, e.reason)
            settled.add(e.member)
        elif e.kind == "pool_admitted":
            settled.add(e.member)  # out again since, but not by an event we kept
        if len(settled) == len(members):
            break
    return found


def excluded_members(state: ClusterState, group: Group) -> list[Excluded]:
    """Members of the group not in its pool, by name, with what is known about why."""
    out_names = sorted(set(group.members) - group.pool)
    known = _last_exclusions(state, group.name, set(out_names))
    result = []
    for name in out_names:
        member = group.members[name]
        version, reason = known.get(name, (0, ""))
        rec = group.recoveries.get(name)
        if not reason and rec is not None and rec.status in OPEN:
            # An open recovery belongs to the current exclusion: admission cancels it.
            version, reason = rec.failure, rec.reason
        result.append(Excluded(member=name, node=member.node, version=version, reason=reason,
                               blocked_by=in_service_eligible(state, group, name) or ""))
    return result
