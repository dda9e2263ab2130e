"""The coordinator config's `recovery:` section: defaults, values, clear errors."""

from __future__ import annotations

import pytest

from vnfha.coordinator.config import ConfigError, parse_config


def cfg(**recovery):
    data = {"node_id": "c1", "cluster": {"members": [{"id": "c1", "api": "127.0.0.1:7401"}]},
            "store": {"backend": "memory"}}
    if recovery:
        data["recovery"] = recovery
    return parse_config(data, source="c.yaml")


def error(**recovery) -> str:
    with pytest.raises(ConfigError) as e:
        cfg(**recovery)
    return str(e.value)


def test_defaults_mean_no_hook():
    r = cfg().recovery
    assert not r.enabled and r.max_attempts == 3 and r.without_lb is False


def test_exec_and_webhook():
    r = cfg(exec="/usr/local/bin/heal --group web", webhook="http://198.18.0.60:9000/recover",
            timeout=2, max_attempts=5, backoff=0.5, backoff_max=8, without_lb=True).recovery
    assert r.exec == ("/usr/local/bin/heal", "--group", "web")
    assert r.webhook == "http://198.18.0.60:9000/recover"
    assert (r.timeout, r.max_attempts, r.backoff, r.backoff_max) == (2, 5, 0.5, 8)
    assert r.enabled and r.without_lb
    assert cfg(exec=["/bin/heal", "a b"]).recovery.exec == ("/bin/heal", "a b")


@pytest.mark.parametrize(("setting", "message"), [
    ({"exec": 5}, "recovery.exec must be a command"),
    ({"exec": ["ok", ""]}, "recovery.exec must be a command"),
    ({"webhook": "https://x/recover"}, "must be an http://host[:port]/path URL"),
    ({"webhook": "http://x:99999/"}, "invalid port"),
    ({"max_attempts": 0}, "recovery.max_attempts (0) must be >= 1"),
    ({"backoff": 5, "backoff_max": 1}, "recovery.backoff_max (1) must be >= recovery.backoff"),
    ({"without_lb": "yes"}, "recovery.without_lb must be true or false"),
    ({"timeout": 0}, "recovery.timeout (0) must be > 0"),
    ({"retries": 3}, "unknown setting recovery.retries"),
])
def test_bad_settings_are_named(setting, message):
    assert message in error(**setting)
