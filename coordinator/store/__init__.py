"""Stores: how commands become durable and ordered (memory, raft, later etcd)."""
