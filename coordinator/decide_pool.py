"""Policy for active-active groups: (state, observations, now) -> pool commands. Pure.

Called by `decide` for every active-active group, after member health has been
synced (so a LOST or UNHEALTHY member is already committed as such in the
scratch state it reads). Rules:

1. **Exclude.** A member in service whose health is LOST (its node's quorum
   lease expired: the same rule as active/standby) or UNHEALTHY (its agent
   says so), or that a load balancer's own checks call failing (LB as the
   cluster manager, `Observations.lb_down`), is excluded; the exclusion opens a
   recovery record. A member whose node enters maintenance, or whose agent was
   stopped (drain_node), is excluded too, but without a recovery (nothing failed).
2. **Then recover.** Recovery is requested only once the exclusion is
   committed *and* every live load-balancer agent of the group has reported
   applying that pool version (at least one must have), so the VNF manager
   never restarts a member that still receives traffic. `Policy.
   recover_without_lb` drops the LB condition for groups no LB serves.
3. **Rejoin.** A member out of service rejoins when it is committed healthy,
   not quarantined (it failed and has not yet been healthy for the
   stabilization time, see decide._stabilize), its node is not in maintenance,
   no load balancer calls it failing, and we have just heard it report healthy.
"""

from __future__ import annotations

from collections.abc import Callable

from vnfha.coordinator import commands as C
from vnfha.coordinator.commands import Command, Stamp
from vnfha.coordinator.model import ClusterState, Group, Health, Recovery
from vnfha.coordinator.observations import Observations, Policy
from vnfha.coordinator.pool_state import in_service_eligible


def pool_rules(current: Callable[[], ClusterState], gname: str, obs: Observations, now: float,
               policy: Policy, emit: Callable[[Command], None],
               st: Callable[[], Stamp]) -> None:
    """Emit the commands rules 1-3 call for in one active-active group. `st` gives each
    command's request id and clock (decide's caller chooses them)."""
    _exclude(current, gname, obs, emit, st)
    _request_recoveries(current, gname, obs, now, policy, emit, st)
    _admit(current, gname, obs, now, policy, emit, st)


def _exclude(current: Callable[[], ClusterState], gname: str, obs: Observations,
             emit: Callable[[Command], None], st: Callable[[], Stamp]) -> None:
    for name in sorted(current().groups[gname].pool):
        state = current()
        group = state.groups[gname]
        m = group.members.get(name)
        if m is None:
            continue
        node = state.nodes.get(m.node)
        lb_says = obs.lb_down.get((gname, name))
        if m.health in (Health.LOST, Health.UNHEALTHY):
            why = ("lease expired" if m.health == Health.LOST
                   else "reported unhealthy")
            emit(C.pool_exclude(gname, name, group.pool_version,
                                reason=f"member {name} {why} (node {m.node})", **st()))
        elif lb_says is not None:
            emit(C.pool_exclude(gname, name, group.pool_version,
                                reason=f"member {name} failing the load balancer's checks "
                                       f"({lb_says})", **st()))
        elif node is None or node.maintenance or node.stopped:
            emit(C.pool_exclude(gname, name, group.pool_version, recover=False,
                                reason=f"node {m.node} "
                                       + ("stopped" if node is not None and node.stopped
                                          else "in maintenance"), **st()))


def lb_confirmed(group: Group, rec: Recovery, obs: Observations, now: float,
                 policy: Policy) -> bool:
    """Every live LB agent of the group applied the pool version that excluded the
    member (and at least one did)."""
    if not group.lb_applied:
        return policy.recover_without_lb
    done = [node for node, v in group.lb_applied.items() if v >= rec.failure]
    pending = [node for node, v in group.lb_applied.items()
               if v < rec.failure and obs.node_alive(node, now, policy.ttl)]
    return bool(done) and not pending


def _request_recoveries(current: Callable[[], ClusterState], gname: str, obs: Observations,
                        now: float, policy: Policy, emit: Callable[[Command], None],
                        st: Callable[[], Stamp]) -> None:
    group = current().groups[gname]
    for name in sorted(group.recoveries):
        rec = group.recoveries[name]
        if rec.status == "awaiting_lb" and lb_confirmed(group, rec, obs, now, policy):
            emit(C.recovery_update(gname, name, rec.failure, "requested",
                                   message=f"excluded at pool version {rec.failure}, "
                                           "applied by the load balancer", **st()))


def _admit(current: Callable[[], ClusterState], gname: str, obs: Observations, now: float,
           policy: Policy, emit: Callable[[Command], None], st: Callable[[], Stamp]) -> None:
    for name in sorted(current().groups[gname].members):
        state = current()
        group = state.groups[gname]
        if name in group.pool:
            continue
        m = group.members[name]
        report = obs.report(m)
        if (in_service_eligible(state, group, name) is None
                and (gname, name) not in obs.lb_down
                and obs.fresh(m.node, now, policy.ttl)
                and report is not None and report.health == Health.HEALTHY):
            was_out = name in group.recoveries or group.pool_version > 0
            emit(C.pool_admit(gname, name, group.pool_version,
                              reason="healthy and stable: back in service" if was_out
                              else "healthy: in service", **st()))
