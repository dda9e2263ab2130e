"""The kernel lease's nft batches (pure) and the agent's kernel_lease setting."""

from __future__ import annotations

import pytest

from vnfha.agents.config import ConfigError, parse_agent_config
from vnfha.agents.kernellease import (
    TABLE,
    KernelLease,
    dead_batch,
    live_addresses,
    live_batch,
    manage_batch,
    setup_batch,
)


def test_live_batch_sets_the_remaining_lease_in_whole_milliseconds() -> None:
    batch = live_batch(["198.18.0.100/24"], deadline=10.2379, now=10.0)
    lines = batch.splitlines()
    # arp and inet sets, each: ensure it exists, delete it, add it with the new timeout
    assert lines == [
        f"add element arp {TABLE} live {{ 198.18.0.100 timeout 1ms }}",
        f"delete element arp {TABLE} live {{ 198.18.0.100 }}",
        f"add element arp {TABLE} live {{ 198.18.0.100 timeout 237ms }}",
        f"add element inet {TABLE} live4 {{ 198.18.0.100 timeout 1ms }}",
        f"delete element inet {TABLE} live4 {{ 198.18.0.100 }}",
        f"add element inet {TABLE} live4 {{ 198.18.0.100 timeout 237ms }}",
    ]


def test_a_passed_deadline_makes_the_vip_dead_not_live() -> None:
    batch = live_batch(["2001:2::100/64"], deadline=9.9995, now=10.0)
    assert "live6" in batch and "timeout 1ms }\n" in batch
    assert batch.count("add element") == 1 and "delete element" in batch
    assert live_batch(["198.18.0.100/24"], deadline=10.0005, now=10.0) == \
        dead_batch(["198.18.0.100/24"])  # under a millisecond left: not live


def test_manage_puts_ipv4_under_arp_and_ip_rules_ipv6_under_ip6() -> None:
    assert manage_batch("198.18.0.100/24").splitlines() == [
        f"add element arp {TABLE} vips {{ 198.18.0.100 }}",
        f"add element inet {TABLE} vips4 {{ 198.18.0.100 }}"]
    assert manage_batch("2001:2::100/64").splitlines() == [
        f"add element inet {TABLE} vips6 {{ 2001:2::100 }}"]


def test_setup_replaces_old_tables_and_drops_before_conntrack() -> None:
    batch = setup_batch()
    assert batch.index(f"delete table arp {TABLE}") < batch.index(f"table arp {TABLE} {{")
    assert "priority -300" in batch  # before conntrack (-200): established flows stop too
    assert "arp saddr ip @vips arp saddr ip != @live drop" in batch
    assert "ip6 saddr @vips6 ip6 saddr != @live6 drop" in batch  # NAs come from the VIP


def test_claim_writes_managed_and_live_in_one_transaction() -> None:
    batches: list[str] = []
    KernelLease(run=batches.append).hold("198.18.0.100/24", deadline=5.5, now=5.0)
    assert len(batches) == 1
    assert "vips" in batches[0] and "timeout 500ms" in batches[0]


def test_live_addresses_reads_nft_json() -> None:
    doc = ('{"nftables": [{"metainfo": {}}, {"set": {"name": "live", '
           '"elem": [{"elem": {"val": "198.18.0.100", "timeout": 240, "expires": 200}}]}}]}')
    assert live_addresses(lambda argv: doc if argv[-1] == "live" else "") == {"198.18.0.100"}


@pytest.mark.parametrize("value", ["auto", "on", "off"])
def test_kernel_lease_setting(value: str) -> None:
    c = parse_agent_config({"node": "vm1", "coordinators": ["127.0.0.1:7401"],
                            "members": [{"group": "web", "member": "web-1"}],
                            "vip": {"kernel_lease": value}})
    assert c.vip.kernel_lease == value


def test_kernel_lease_setting_rejects_other_values() -> None:
    with pytest.raises(ConfigError, match=r"vip\.kernel_lease"):
        parse_agent_config({"node": "vm1", "coordinators": ["127.0.0.1:7401"],
                            "members": [{"group": "web", "member": "web-1"}],
                            "vip": {"kernel_lease": "yes"}})


def test_realtime_settings_default_auto_and_checked() -> None:
    base = {"node": "vm1", "coordinators": ["127.0.0.1:7401"],
            "members": [{"group": "web", "member": "web-1"}]}
    c = parse_agent_config(base)
    assert (c.realtime, c.realtime_priority) == ("auto", 10)
    c = parse_agent_config({**base, "realtime": {"mode": "off", "priority": 50}})
    assert (c.realtime, c.realtime_priority) == ("off", 50)
    with pytest.raises(ConfigError, match=r"realtime\.priority \(0\) must be between 1 and 99"):
        parse_agent_config({**base, "realtime": {"priority": 0}})
    with pytest.raises(ConfigError, match=r"realtime\.mode"):
        parse_agent_config({**base, "realtime": {"mode": "always"}})
