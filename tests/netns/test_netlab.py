"""The namespace lab itself: hosts, reachability, the faults it injects, cleanup."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from vnfha_lab.netlab import OWNER_DIR, Lab, LabError, pids_in_netns

pytestmark = pytest.mark.slow


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def test_hosts_reach_each_other_over_v4_and_v6(lab: Lab) -> None:
    a = lab.add_host("a", lab.address(1), lab.address(1, 6))
    b = lab.add_host("b", lab.address(2), lab.address(2, 6))
    assert a.addresses() == {"198.18.0.1/24", "2001:2::1/64"}
    assert a.ping(b.ip4) and a.ping(b.ip6) and b.ping(a.ip4)
    assert a.neighbours()[b.ip4] == b.mac
    assert {lab.switch, a.netns, b.netns} <= netns_names()


def test_cut_pair_drops_everything_between_them_only(lab: Lab) -> None:
    a, b, c = (lab.add_host(n, lab.address(i), lab.address(i, 6))
               for i, n in enumerate("abc", 1))
    lab.cut(a, b)
    assert not a.ping(b.ip4, timeout=0.3) and not b.ping(a.ip6, timeout=0.3)
    assert a.ping(c.ip4) and b.ping(c.ip4)
    lab.heal(b, a)  # either order names the same pair
    assert a.ping(b.ip4)


def test_cut_host_from_everyone_and_heal_all(lab: Lab) -> None:
    a, b, c = (lab.add_host(n, lab.address(i)) for i, n in enumerate("abc", 1))
    lab.cut(a)
    lab.cut(b, c)
    assert not a.ping(b.ip4, timeout=0.3) and not c.ping(a.ip4, timeout=0.3)
    assert not b.ping(c.ip4, timeout=0.3)
    lab.heal()
    assert a.ping(b.ip4) and a.ping(c.ip4) and b.ping(c.ip4)


def test_isolation_cuts_isolated_ports_from_each_other_only(lab: Lab) -> None:
    a, b, c = (lab.add_host(n, lab.address(i)) for i, n in enumerate("abc", 1))
    lab.isolate(a)
    assert a.ping(b.ip4), "one isolated port still reaches non-isolated ones"
    lab.isolate(b)
    assert not a.ping(b.ip4, timeout=0.3)
    assert a.ping(c.ip4) and b.ping(c.ip4)
    lab.isolate(a, on=False)
    assert a.ping(b.ip4)


def test_link_down_and_up(lab: Lab) -> None:
    a, b = lab.add_host("a", lab.address(1)), lab.add_host("b", lab.address(2))
    lab.link_down(a)
    assert not b.ping(a.ip4, timeout=0.3)
    lab.link_up(a)
    deadline = time.monotonic() + 3
    while not b.ping(a.ip4, timeout=0.2) and time.monotonic() < deadline:
        pass
    assert b.ping(a.ip4)


def test_close_kills_processes_and_removes_namespaces() -> None:
    lab = Lab()
    try:
        a = lab.add_host("a", "198.18.0.1/24")
        proc = a.popen(["sleep", "60"])
        deadline = time.monotonic() + 3  # `ip netns exec` enters the namespace soon after
        while not pids_in_netns(a.netns) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pids_in_netns(a.netns)
        result = a.run(["ip", "-br", "addr", "show", "eth0"])
        assert "198.18.0.1/24" in result.stdout
    finally:
        lab.close()
    assert proc.poll() is not None
    assert not {n for n in netns_names() if n.startswith(lab.prefix)}
    assert not (OWNER_DIR / f"{lab.prefix}.json").exists()
    lab.close()  # idempotent
    with pytest.raises(LabError):
        a.popen(["true"])


def test_sweep_removes_labs_of_dead_runs_only(lab: Lab) -> None:
    lab.add_host("a", lab.address(1))
    dead = Lab()
    try:
        dead.add_host("a", dead.address(1))
        dead.hosts["a"].popen(["sleep", "60"])
        (OWNER_DIR / f"{dead.prefix}.json").write_text(json.dumps({"pid": 1, "start": "-1"}))
        swept = Lab.sweep()
        assert set(swept) == set(dead.namespaces()) == {dead.switch, f"{dead.prefix}-a"}
        names = netns_names()
        assert not {n for n in names if n.startswith(dead.prefix)}
        assert set(lab.namespaces()) <= names, "a live lab is never swept"
    finally:
        dead.close()


def test_bad_addresses_and_names_are_refused(lab: Lab) -> None:
    with pytest.raises(ValueError, match="outside"):
        lab.add_host("a", "192.0.2.1/24")
    with pytest.raises(ValueError, match="prefix length"):
        lab.add_host("a", "198.18.0.1")
    with pytest.raises(ValueError, match="IPv6"):
        lab.add_host("a", ipv6="198.18.0.1/24")
    with pytest.raises(ValueError, match="host name"):
        lab.add_host("much-too-long-name")
    with pytest.raises(ValueError, match="outside"):
        Lab(subnet4="10.0.0.0/24")
    with pytest.raises(LabError, match="already exists"):
        Lab(prefix=lab.prefix)
    assert lab.switch in netns_names(), "a clashing lab never deletes what it did not make"
