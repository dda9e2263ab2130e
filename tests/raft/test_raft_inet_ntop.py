"""pysyncobj replaces socket.inet_ntop with a Windows-only function on import; our
raft package must undo that, or IPv6 formatting breaks in every coordinator."""

import socket

import vnfha.coordinator.raft
import vnfha.coordinator.raft.log  # noqa: F401


def test_inet_ntop_still_works_for_ipv6_after_importing_raft():
    packed = socket.inet_pton(socket.AF_INET6, "2001:2::1")
    assert socket.inet_ntop(socket.AF_INET6, packed) == "2001:2::1"
    assert socket.inet_ntop(socket.AF_INET, bytes([198, 18, 0, 1])) == "198.18.0.1"
