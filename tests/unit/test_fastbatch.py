"""fastbatch.newest_first: which datagrams of a batch the intake tries, in what order."""

from __future__ import annotations

import random

from vnfha.coordinator.fastbatch import newest_first


def c(n: int) -> bytes:
    return n.to_bytes(8, "big")


def test_one_group_per_key_highest_counter_first_in_order_of_last_arrival() -> None:
    keys = [b"a", b"b", b"a", b"c", b"b", b"a"]
    counters = [c(1), c(1), c(2), c(1), c(2), c(3)]
    assert newest_first(keys, counters) == [[3], [4, 1], [5, 2, 0]]


def test_counter_not_arrival_orders_a_group() -> None:
    """A replayed older round that arrives last comes after the real newer one; a
    forgery claiming a higher counter comes first (and is refused by the intake)."""
    keys = [b"a", b"a", b"a", b"a"]
    counters = [c(7), c(8), c(2**63), c(7)]
    assert newest_first(keys, counters) == [[2, 1, 3, 0]]


def test_counters_compare_as_numbers() -> None:
    keys = [b"a", b"a", b"a"]
    counters = [c(255), c(256), c(1)]
    assert newest_first(keys, counters) == [[1, 0, 2]]


def test_groups_named_first_go_first_keeping_their_order() -> None:
    keys = [b"s1", b"a1", b"s2", b"a2", b"s1"]
    counters = [c(1)] * 4 + [c(2)]
    got = newest_first(keys, counters, first=lambda k: k.startswith(b"a"))
    assert got == [[1], [3], [2], [4, 0]]


def test_every_index_once_on_random_batches() -> None:
    rng = random.Random(14)
    for _ in range(200):
        n = rng.randrange(0, 60)
        keys = [bytes([rng.randrange(5)]) for _ in range(n)]
        counters = [c(rng.randrange(10)) for _ in range(n)]
        groups = newest_first(keys, counters, first=lambda k: k == b"\x00")
        assert sorted(i for g in groups for i in g) == list(range(n))
        for g in groups:
            assert len({keys[i] for i in g}) == 1
            assert [counters[i] for i in g] == sorted((counters[i] for i in g), reverse=True)
        assert len(groups) == len(set(keys))
        flags = [keys[g[0]] == b"\x00" for g in groups]
        assert flags == sorted(flags, reverse=True)  # the `first` ones lead
