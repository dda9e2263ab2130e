"""The VIP checker's overlap rule: a handover seen across one slow pass is not two
holders; two VMs that held at one same moment are (lab/vnfha_lab/labcluster.py)."""

from __future__ import annotations

from vnfha_lab.labcluster import VipChecker


class ScriptedCluster:
    """What each pass of reads returned, in order (the VMs are read vm1, vm2, vm3)."""

    def __init__(self, *passes: set[str]) -> None:
        self.vms = ["vm1", "vm2", "vm3"]
        self.crashed: set[str] = set()
        self._passes = list(passes)

    def vip_holders(self) -> set[str]:
        return self._passes.pop(0)


def confirmed(first: set[str], second: set[str]) -> frozenset[str]:
    checker = VipChecker(ScriptedCluster(second))  # type: ignore[arg-type]
    return checker._confirm(frozenset(first))


def test_a_handover_between_two_reads_is_one_holder():
    # vm1 let go after it was read; vm2 took over before it was read.
    assert confirmed({"vm1", "vm2"}, {"vm2"}) == {"vm2"}


def test_two_vms_holding_through_both_passes_are_two_holders():
    assert confirmed({"vm1", "vm2"}, {"vm1", "vm2"}) == {"vm1", "vm2"}


def test_an_earlier_vm_still_holding_after_a_later_one_was_read_overlapped_it():
    # vm1 held at both its reads, so also when vm2 was seen holding in between.
    assert confirmed({"vm1", "vm2"}, {"vm1"}) == {"vm1", "vm2"}


def test_three_holders_counted_only_as_far_as_proven():
    assert confirmed({"vm1", "vm2", "vm3"}, {"vm2", "vm3"}) == {"vm2", "vm3"}
    assert confirmed({"vm1", "vm2", "vm3"}, {"vm1", "vm2"}) == {"vm1", "vm2", "vm3"}


def test_the_polling_loop_records_a_real_overlap():
    cluster = ScriptedCluster({"vm1"}, {"vm1", "vm2"}, {"vm1", "vm2"}, {"vm2"})
    checker = VipChecker(cluster, interval=0.0)  # type: ignore[arg-type]
    original = cluster.vip_holders

    def bounded() -> set[str]:
        holders = original()
        if not cluster._passes:
            checker._stop.set()
        return holders

    cluster.vip_holders = bounded  # type: ignore[method-assign]
    checker._run()
    assert checker.log.polls == 3  # the second pass of a dual poll is part of it
    assert checker.log.max_holders == 2
    assert [h for _, h in checker.log.changes] == [{"vm1"}, {"vm1", "vm2"}, {"vm2"}]
