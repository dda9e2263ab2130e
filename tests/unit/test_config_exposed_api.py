"""A coordinator without TLS trusts every caller with everything, so only a loopback API
may run that way unless the config says `insecure: true` out loud (issue 11, re-run).

Before this rule a single coordinator on a routable address without `tls` started, and a
host with no credential at all paused failover over the network.
"""

from __future__ import annotations

from typing import Any

import pytest

from vnfha.coordinator.config import ConfigError, parse_config


def single(api: str, **extra: Any) -> dict[str, Any]:
    return {"node_id": "c1", "cluster": {"members": [{"id": "c1", "api": api,
                                                      "raft": "127.0.0.1:7501"}]}, **extra}


@pytest.mark.parametrize("api", ["198.18.0.30:7401", "0.0.0.0:7401", "[::]:7401",
                                 "[2001:2::1]:7401", "vnfha-c1.example:7401"])
def test_single_coordinator_on_a_routable_address_needs_tls(api: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(single(api), source="c1.yaml")
    msg = str(info.value)
    assert "tls" in msg and api in msg and "insecure: true" in msg and "\n" not in msg


@pytest.mark.parametrize("api", ["127.0.0.1:7401", "127.0.0.2:7401", "[::1]:7401",
                                 "localhost:7401"])
def test_single_coordinator_on_loopback_runs_without_tls(api: str) -> None:
    assert parse_config(single(api), source="c1.yaml").tls is None


def test_insecure_true_still_allows_a_routable_address_without_tls() -> None:
    c = parse_config(single("198.18.0.30:7401", insecure=True), source="c1.yaml")
    assert c.tls is None and c.insecure
