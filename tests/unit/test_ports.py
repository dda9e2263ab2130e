"""Test ports: one process never gets the same port twice before binding it.

CI once failed because two calls for a three-node Raft cluster returned the
same free port (both were free when checked, neither was bound yet).
"""

from __future__ import annotations

from vnfha_lab import ports


def test_free_port_never_repeats_within_a_process(monkeypatch) -> None:
    # Squeeze the range to 40 ports so that, without the per-process record,
    # 30 random draws would repeat a port almost surely (birthday bound > 99 %).
    monkeypatch.setattr(ports, "_LOW", 20000)
    monkeypatch.setattr(ports, "_HIGH", 20040)
    monkeypatch.setattr(ports, "_handed_out", set())
    got = [ports.free_port(tries=10_000) for _ in range(30)]
    assert len(set(got)) == len(got)
    assert all(20000 <= p < 20040 for p in got)


def test_free_ports_are_distinct_and_bindable() -> None:
    import socket

    got = ports.free_ports(8)
    assert len(set(got)) == 8
    for p in got:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))
