"""LeaseTable.forget_absent: a removed node's lease records go, and one registered again
under the same name gets a new node's grace, not its old silence."""

from __future__ import annotations

from vnfha.coordinator.leases import LeaseTable, Report
from vnfha.coordinator.model import Health

TTL = 0.25


def reports(epoch: int = 0) -> tuple[Report, ...]:
    return (Report(group="web", member="m1", health=Health.HEALTHY, seen_epoch=epoch,
                   active_epoch=0),)


def test_removed_nodes_are_forgotten_and_the_rest_kept() -> None:
    t = LeaseTable(started_at=0.0, ttl=TTL)
    for i, node in enumerate(("vm1", "vm2", "vm3")):
        t.record(node, reports(), 1.0 + i)
        t.heard_fast(node, 1.0 + i)
    assert t.tracked() == 3
    assert t.forget_absent({"vm1", "vm3"}) == ["vm2"]
    assert t.tracked() == 2
    obs = t.observations(0.0, None, now=4.0)
    assert set(obs.nodes) == {"vm1", "vm3"}
    assert t.forget_absent({"vm1", "vm3"}) == []  # nothing more to drop


def test_a_node_registered_again_gets_a_new_nodes_grace() -> None:
    t = LeaseTable(started_at=0.0, ttl=TTL, first_keepalive_grace=2.0)
    t.record("vm1", reports(), 1.0)
    assert t.age("vm1", 11.0) == 10.0  # silent for 10 s before it was removed
    t.forget_absent(set())
    # Registered again at 11 s and asked about before its first keepalive: a new node,
    # young (not 10 s silent, which a leader would expire at once).
    assert t.age("vm1", 11.0) == 0.0
    assert t.age("vm1", 12.0) < 2.0


def test_versions_never_repeat_across_a_forget() -> None:
    """decide_dirty compares versions by value: a node forgotten and recorded again must
    not come back with a version the tracker saw before."""
    t = LeaseTable(started_at=0.0, ttl=TTL)
    t.record("vm1", reports(1), 1.0)
    first = t.observations(0.0, None, now=1.0).versions["vm1"]
    t.forget_absent(set())
    t.record("vm1", reports(1), 2.0)
    again = t.observations(0.0, None, now=2.0).versions["vm1"]
    assert again != first
