"""The kvstore sample refuses a write its checkpoint could not carry, before applying or
acknowledging it (it used to acknowledge writes past state.checkpoint_max_bytes, whose
checkpoints were then refused `too_large`, so a takeover lost them)."""

from __future__ import annotations

import json
import random

import pytest

from vnfha.agents.samples.kvstore import SizeBudget, StoreFull


def write(budget: SizeBudget, data: dict[str, str], key: str, value: str) -> None:
    size = budget.after(data, key, value)
    budget.commit(data, key, size)
    data[key] = value


def test_tracked_size_is_the_checkpoints_size_through_random_writes() -> None:
    rnd = random.Random(7)
    budget, data = SizeBudget(10**9), {}
    for _ in range(2000):
        key = rnd.choice(["k", "κλειδί", 'q"uote', "new\nline", *(f"k{i}" for i in range(40))])
        value = "".join(rnd.choice('ab"\\\u00e9\u2028x') for _ in range(rnd.randrange(0, 30)))
        write(budget, data, key, value)
        assert budget.size == len(json.dumps(data, sort_keys=True).encode())


def test_a_write_over_the_limit_is_refused_and_changes_nothing() -> None:
    budget, data = SizeBudget(200), {}
    n = 0
    with pytest.raises(StoreFull) as refused:
        while True:
            write(budget, data, f"key{n}", "v" * 20)
            n += 1
    assert "over the 200" in str(refused.value) and "nothing written" in str(refused.value)
    assert len(json.dumps(data, sort_keys=True)) <= 200
    before = (dict(data), budget.size, budget.keys)
    with pytest.raises(StoreFull):
        budget.after(data, "another", "v" * 20)
    assert (data, budget.size, budget.keys) == before
    # Overwriting with a shorter value still fits: the budget is the size, not a count.
    write(budget, data, "key0", "")
    assert budget.size == len(json.dumps(data, sort_keys=True))


def test_reset_after_a_snapshot_or_a_sync_batch() -> None:
    budget = SizeBudget(1000)
    data = {"a": "1", "b": "x" * 50}
    budget.reset(data)
    assert budget.size == len(json.dumps(data, sort_keys=True)) and budget.keys == 2
    write(budget, data, "c", "3")
    assert budget.size == len(json.dumps(data, sort_keys=True))
