"""Every backend declares its guarantees (store/base.py Guarantees), consistently, and
config load reads the declaration (the contract suite checks each one holds:
tests/contract/test_store_guarantees.py)."""

from __future__ import annotations

import pytest

from vnfha.coordinator import config
from vnfha.coordinator.store import BACKENDS, backend_class, guarantees_of
from vnfha.coordinator.store.base import Guarantees


def test_every_configurable_backend_has_a_class() -> None:
    assert set(config.BACKENDS) == set(BACKENDS)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_backend_declares_consistent_guarantees(backend: str) -> None:
    g = guarantees_of(backend)
    assert isinstance(g, Guarantees)
    assert "guarantees" in vars(backend_class(backend)), "declared by the class itself"
    # An external quorum holds the state outside the process; monotonic reads across a
    # restart need something that survived it; a shared state must be durable (a
    # coordinator that restarts must not bring back an empty state to the others).
    assert not g.external_quorum or g.durable
    assert not g.monotonic_reads_after_restart or g.durable
    assert not g.shared or g.durable


def test_the_declarations_as_documented() -> None:
    assert guarantees_of("memory") == Guarantees(
        durable=False, fenced_leader_writes=False, external_quorum=False,
        monotonic_reads_after_restart=False, shared=False)
    assert guarantees_of("raft").durable and not guarantees_of("raft").fenced_leader_writes
    assert guarantees_of("etcd").fenced_leader_writes and guarantees_of("etcd").external_quorum
