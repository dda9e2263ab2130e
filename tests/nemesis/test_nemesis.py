"""The randomized nemesis, bounded: one seeded run of 20 faults (~2 minutes, loaded host).

The seed is NEMESIS_SEED if set, else taken from the clock, and printed either
way; on a violation the assertion message carries the seed, every property's
verdict, the history excerpts and the whole fault schedule, so

    NEMESIS_SEED=S NEMESIS_FAULTS=N .venv/bin/python -m pytest tests/nemesis/test_nemesis.py

(or bench/nemesis.py --seed S --faults N) replays it. NEMESIS_KINDS (comma list)
picks the fault kinds; the default is every kind not switched off
(faults.DEFAULT_OFF, empty now: the disk faults run too) and not waiting for a
fix of main (faults.PENDING_FIX, empty now). Violations of a
property in PENDING_PROPERTY (empty now) are printed but do not fail the test.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .faults import PENDING_FIX, default_kinds
from .runner import run_nemesis

pytestmark = pytest.mark.slow

# Properties main breaks today whatever the kinds: reported by every run, but not
# failing this test until the fix lands (then delete the entry). bench/nemesis.py
# counts them as violations.
PENDING_PROPERTY: dict[str, str] = {}  # monotonic_epochs held once reads after a restart
# were gated (issue 12 deliverable 2): before, a restarted coordinator served 0-19 older
# epochs per 200 faults.


def test_nemesis_keeps_every_property(tmp_path: Path):
    seed = int(os.environ.get("NEMESIS_SEED") or time.time())
    faults = int(os.environ.get("NEMESIS_FAULTS") or 20)
    kinds = [k for k in os.environ.get("NEMESIS_KINDS", "").split(",") if k] or [
        k for k in default_kinds() if k not in PENDING_FIX]
    print(f"nemesis seed {seed} ({faults} faults); not run until fixed: "
          + "; ".join(f"{k}: {why}" for k, why in PENDING_FIX.items() if k not in kinds))
    result = run_nemesis(tmp_path, seed, faults, kinds)
    print(result.report())
    assert len(result.history.faults) == faults, result.report(schedule=True)
    # The run was not vacuous: the client wrote and the checker saw the VIP.
    assert result.figures["writes_acked"] > 0 and result.history.holders, result.report()
    failing = {k: v for k, v in result.verdicts.items() if v and k not in PENDING_PROPERTY}
    assert not failing, result.report()
