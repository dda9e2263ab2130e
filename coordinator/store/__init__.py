"""Stores: how commands become durable and ordered (memory, raft, etcd)."""

from __future__ import annotations

import importlib

from vnfha.coordinator.store.base import Guarantees, Store

#: store.backend -> the class that implements it ("module:Class", imported on use:
#: the Raft and etcd backends pull in their libraries).
BACKENDS = {
    "memory": "vnfha.coordinator.store.memory:MemoryStore",
    "raft": "vnfha.coordinator.store.raft:RaftStore",
    "etcd": "vnfha.coordinator.store.etcd:EtcdStore",
}


def backend_class(backend: str) -> type[Store]:
    """The Store class of a `store.backend` name (one of BACKENDS)."""
    module, name = BACKENDS[backend].split(":")
    cls: type[Store] = getattr(importlib.import_module(module), name)
    return cls


def guarantees_of(backend: str) -> Guarantees:
    """What the named backend declares it guarantees (its class's `guarantees`)."""
    return backend_class(backend).guarantees
