"""The runnable example in docs/state-sync.md runs and shows what it claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "statesync" / "peer_sync_demo.py"


def test_peer_sync_example_runs():
    r = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "epoch 2: standby has {'a': 2, 'b': 1, 'c': 1}" in r.stdout
    assert "the deposed active is refused" in r.stdout and "stale_epoch" in r.stdout
    assert "refusals: {'stale_epoch': 1}" in r.stdout
