"""The one authorization table: which identity may call which RPC on which object.

Every RPC served on a vnfha TCP listener has exactly one `Rule` in `RULES`, keyed by
its full gRPC method name. A method without a rule is refused (and the test
matrix, generated from the service descriptors, fails for it). Rules are pure:
functions of the identity, the request message and the replicated state.

Two callers pass every rule: `local` (the 0600 unix admin socket, i.e. local
root) and `insecure` (a listener deliberately run without TLS, see
docs/security.md); they carry no certificate, so nothing finer can be checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vnfha.coordinator.model import ClusterState
from vnfha.coordinator.security.identity import INSECURE, LOCAL, Identity

#: (identity, request, state) -> why it is refused, or None when allowed
Check = Callable[[Identity, Any, ClusterState], str | None]

ANY = frozenset({"node", "coordinator", "admin", "viewer", "lb"})
READERS = frozenset({"admin", "viewer"})
TRUSTED = frozenset({LOCAL, INSECURE})


@dataclass(frozen=True)
class Rule:
    #: identity kinds that may call at all
    kinds: frozenset[str]
    #: what the rule says, quoted in every refusal and in docs/security.md
    text: str
    #: the object-level check (None: the kind is enough)
    check: Check | None = None
    #: a client stream is checked message by message (a keepalive stream is long)
    per_message: bool = False
    #: the call changes replicated state: accepted calls are audited
    mutates: bool = False
    #: served only on a local unix socket, never to a network peer
    local_only: bool = False
    #: high-rate data writes (checkpoints, queue): audited at DEBUG, not INFO
    data_plane: bool = False


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def _q(value: str) -> str:
    """A request's string in a message: escaped and bounded (it is the caller's input)."""
    return repr(value[:64]) + ("..." if len(value) > 64 else "")


def _own_node(identity: Identity, req: Any, state: ClusterState) -> str | None:
    if identity.kind == "node" and req.node != identity.name:
        return f"node {identity.name} may only act for itself, not for node {_q(req.node)}"
    return None


def _register(identity: Identity, req: Any, state: ClusterState) -> str | None:
    why = _own_node(identity, req, state)
    if why is not None:
        return why
    for m in req.members:
        g = state.groups.get(m.group)
        owner = g.members.get(m.member) if g is not None else None
        if owner is not None and owner.node != identity.name:
            return (f"member {g.name}/{owner.name} belongs to node {owner.node}; node "
                    f"{identity.name} cannot declare it")
    return None


def _lb_self(identity: Identity, req: Any, state: ClusterState) -> str | None:
    if req.node != identity.name:
        return f"lb {identity.name} may only report for itself, not for {_q(req.node)}"
    return None


def _hosts_active(identity: Identity, req: Any, state: ClusterState) -> str | None:
    g = state.groups.get(req.group)
    active = g.members.get(g.active) if g is not None and g.active else None
    if active is None or active.node != identity.name:
        return (f"node {identity.name} does not host the current active of group "
                f"{_q(req.group)}")
    return None


def _member_or_reader(identity: Identity, req: Any, state: ClusterState) -> str | None:
    if identity.kind != "node":
        return None
    g = state.groups.get(req.group)
    if g is None or not any(m.node == identity.name for m in g.members.values()):
        return f"node {identity.name} hosts no member of group {_q(req.group)}"
    return None


def _rule(kinds: set[str] | frozenset[str], text: str, **kw: Any) -> Rule:
    return Rule(frozenset(kinds), text, **kw)


_ADMIN = _rule({"admin"}, "admin only", mutates=True)
_READ = _rule(READERS, "viewer or admin")
_NODE_SELF = _rule({"node"}, "a node, for itself only", check=_own_node)
_GROUP_READ = _rule({"node", "admin", "viewer"},
                    "a node hosting a member of the group, a viewer or an admin",
                    check=_member_or_reader)
_ACTIVE_WRITE = _rule({"node"}, "the node hosting the group's current active",
                      check=_hosts_active, mutates=True, data_plane=True)
_SYNC_PEER = _rule({"node"}, "a node (the VNFC peer of the group)")
_HEALTH = _rule(ANY, "any authenticated identity")
_ROLE = _rule(set(), "local unix socket only", local_only=True)

RULES: dict[str, Rule] = {
    # AgentService: a node speaks for itself and the members declared for it.
    "/vnfha.v1.AgentService/RegisterNode": _rule(
        {"node"}, "a node, for itself and members not held by another node",
        check=_register, mutates=True),
    "/vnfha.v1.AgentService/Keepalive": _rule(
        {"node"}, "a node, for itself only (every message)", check=_own_node,
        per_message=True, mutates=True),
    "/vnfha.v1.AgentService/WatchAssignments": _NODE_SELF,
    "/vnfha.v1.AgentService/Drain": _rule({"node"}, "a node, for itself only",
                                          check=_own_node, mutates=True),
    # The fast path's session key: every datagram sealed with it speaks for this node.
    "/vnfha.v1.AgentService/OpenFastPath": _rule({"node"}, "a node, for itself only",
                                                 check=_own_node),
    # AdminService
    "/vnfha.v1.AdminService/GetStatus": _READ,
    "/vnfha.v1.AdminService/ListEvents": _READ,
    "/vnfha.v1.AdminService/WatchEvents": _READ,
    "/vnfha.v1.AdminService/Switchover": _ADMIN,
    "/vnfha.v1.AdminService/SetMaintenance": _ADMIN,
    "/vnfha.v1.AdminService/ApplyGroups": _ADMIN,
    "/vnfha.v1.AdminService/SetPaused": _ADMIN,
    "/vnfha.v1.AdminService/SetFailsafe": _ADMIN,
    "/vnfha.v1.AdminService/Failover": _ADMIN,
    "/vnfha.v1.AdminService/ResetMember": _ADMIN,
    "/vnfha.v1.AdminService/RemoveNode": _ADMIN,
    "/vnfha.v1.AdminService/ReadmitNode": _ADMIN,
    "/vnfha.v1.AdminService/DeleteGroup": _ADMIN,
    # PeerService: coordinators asking each other for lease ages.
    "/vnfha.v1.PeerService/GetLeaseAges": _rule({"coordinator"}, "coordinators only"),
    # PoolService: LB agents follow the pool and report what they applied.
    "/vnfha.v1.PoolService/WatchPool": _rule({"lb", "admin", "viewer"},
                                             "an lb, a viewer or an admin"),
    "/vnfha.v1.PoolService/ReportPoolApplied": _rule(
        {"lb"}, "an lb, for itself only", check=_lb_self, mutates=True),
    # StateService: writes only from the active's node; reads from the group's nodes.
    "/vnfha.v1.StateService/Publish": _ACTIVE_WRITE,
    "/vnfha.v1.StateService/PutCheckpoint": _ACTIVE_WRITE,
    "/vnfha.v1.StateService/Read": _GROUP_READ,
    "/vnfha.v1.StateService/GetCheckpoint": _GROUP_READ,
    "/vnfha.v1.StateService/GetEpoch": _GROUP_READ,
    # StateSyncService (served by a standby VNFC's receiver, agents/statesync).
    "/vnfha.v1.StateSyncService/ApplyUpdates": _SYNC_PEER,
    "/vnfha.v1.StateSyncService/InstallSnapshot": _SYNC_PEER,
    "/vnfha.v1.StateSyncService/GetPosition": _SYNC_PEER,
    # FailsafeService (served by every agent, agents/failsafe_peer.py): the granter
    # itself checks that the caller's node hosts the group's active (agents/failsafe.py).
    "/vnfha.v1.FailsafeService/RequestLease": _rule(
        {"node"}, "a node, for the active member it hosts (checked by the granter)"),
    # RoleService: the agent's local role API for VNFCs (a unix socket, agents/roleapi).
    "/vnfha.v1.RoleService/GetRole": _ROLE,
    "/vnfha.v1.RoleService/WatchRole": _ROLE,
    # Health: load balancers and probes; reveals only SERVING or not.
    "/grpc.health.v1.Health/Check": _HEALTH,
    "/grpc.health.v1.Health/Watch": _HEALTH,
    "/grpc.health.v1.Health/List": _HEALTH,
}


def short(method: str) -> str:
    """'/vnfha.v1.AdminService/Switchover' -> 'AdminService/Switchover'."""
    service, _, name = method.lstrip("/").rpartition("/")
    return f"{service.rpartition('.')[2]}/{name}"


def decide_call(method: str, identity: Identity) -> Decision:
    """May this identity call this method at all (before looking at the request)?"""
    rule = RULES.get(method)
    if rule is None:
        return Decision(False, f"{identity} may not call {short(method)}: no rule allows "
                               "this method")
    if identity.kind == LOCAL or (identity.kind == INSECURE and not rule.local_only):
        return Decision(True)
    if identity.kind not in rule.kinds:
        return Decision(False, f"{identity} may not call {short(method)}: rule "
                               f"'{rule.text}'")
    return Decision(True)


def decide_request(method: str, identity: Identity, request: Any,
                   state: Callable[[], ClusterState]) -> Decision:
    """May this identity make this request (the object-level part of the rule)?"""
    rule = RULES[method]
    if identity.kind in TRUSTED or rule.check is None:
        return Decision(True)
    why = rule.check(identity, request, state())
    if why is None:
        return Decision(True)
    return Decision(False, f"{identity} may not call {short(method)}: {why} (rule "
                           f"'{rule.text}')")
