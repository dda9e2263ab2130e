"""The coordinator's `state:` settings: defaults, and clear errors for bad limits."""

from __future__ import annotations

import pytest

from vnfha.coordinator.config import ConfigError, StateConfig, parse_config


def cfg(state: object) -> dict:
    return {"node_id": "c1", "store": {"backend": "memory"},
            "cluster": {"members": [{"id": "c1", "api": "127.0.0.1:7401"}]}, "state": state}


def test_defaults_and_overrides():
    assert parse_config(cfg(None)).state == StateConfig()
    c = parse_config(cfg({"checkpoint_max_bytes": 1024, "queue_retain_messages": 10}))
    assert c.state.checkpoint_max_bytes == 1024 and c.state.queue_retain_messages == 10


@pytest.mark.parametrize("state, message", [
    ({"checkpoint_max_bytes": 600_000}, "state.checkpoint_max_bytes (600000) must be <= 524288"),
    ({"queue_max_message_bytes": 0}, "state.queue_max_message_bytes (0) must be >= 1"),
    ({"queue_retain_bytes": 10}, "must be >= state.queue_max_message_bytes"),
    ({"queue_retain_bytes": 1 << 30}, "every snapshot carries"),
    ({"checkpoint_max_byte": 1}, "unknown setting state.checkpoint_max_byte"),
    ({"queue_retain_messages": "many"}, "must be an integer"),
])
def test_bad_limits_are_refused_with_the_setting_named(state, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(cfg(state))
