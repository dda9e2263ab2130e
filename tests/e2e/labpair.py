"""The two-VM namespace lab the netns e2e tests share: build it with vm1 holding the
VIP, dump the process logs if the test failed, and always tear it down."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vnfha_lab.labcluster import LabCluster
from vnfha_lab.netlab import Lab
from vnfha_lab.probe import load_attempts

TTL = 0.3
INTERVAL = 0.075


def build_pair(tmp_path: Path, request: pytest.FixtureRequest,
               cls: type[LabCluster] = LabCluster, **kw) -> Iterator[LabCluster]:
    with Lab() as lab:
        c = cls(lab, tmp_path, ttl=TTL, interval=INTERVAL, **kw)
        try:
            c.start_pair()
            c.wait(lambda: c.vip_holders() == {"vm1"}, 10, "the VIP on vm1")
            yield c
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(c.logs_tail(25), file=sys.stderr)
        finally:
            c.close()


def served_by(probe: Path, vm: str, after: float) -> bool:
    """Did `vm` answer one of the client's probes at or after `after`?"""
    return any(a.ok and a.who == vm and a.at >= after for a in load_attempts(str(probe)))
