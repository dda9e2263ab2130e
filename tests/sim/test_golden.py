"""Golden scenarios (tests/sim/testdata/*.txt): one file per clause of the safety
argument (docs/design.md §3). Each is re-run and must reproduce its file exactly,
with no safety violation. To accept a deliberate change of behaviour, rewrite them:

    VNFHA_SIM_REWRITE=1 .venv/bin/python -m pytest tests/sim/test_golden.py -q

and review the diff (git diff tests/sim/testdata) like code.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from .script import run_file

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


def test_every_clause_has_a_scenario() -> None:
    assert {f.stem for f in FILES} >= {
        "partitioned_active", "leader_minority_with_active", "frozen_agent",
        "coordinator_restart", "grow_3_to_5", "switchover_racing_crash",
        "stale_keepalive_late", "failsafe_total_outage", "failsafe_coordinators_cut_off",
        "failsafe_active_isolated", "failsafe_standby_hears_quorum"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    expected = path.read_text()
    actual, violations = run_file(expected)
    if os.environ.get("VNFHA_SIM_REWRITE") == "1":
        path.write_text(actual)
    assert violations == [], "\n".join(violations)
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            "golden", "actual"))
        pytest.fail(f"{path.name} differs from its golden output (VNFHA_SIM_REWRITE=1 to "
                    f"accept):\n{diff}")
