"""scripts/pytest_lanes.py, which runs the suite as concurrent pytest processes for
scripts/test.sh: a failure in any lane fails the run and is named in the one report at
the end, a lane that runs no test fails it too, and no test runs twice or not at all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pytest_lanes.py"
sys.path.insert(0, str(SCRIPT.parent))
import pytest_lanes  # noqa: E402  (scripts/ is no package)


def project(root: Path, tests: dict[str, str]) -> Path:
    """A tiny project: pytest config with testpaths, and the given test files."""
    (root / "pytest.ini").write_text("[pytest]\ntestpaths = t\naddopts = -ra\n")
    for rel, body in tests.items():
        path = root / "t" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return root


def lanes(root: Path, *specs: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SCRIPT), "--root", str(root)]
    for spec in specs:
        argv += ["--lane", spec]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


OK = "def test_ok():\n    assert True\n"
BAD = "def test_bad():\n    assert 1 == 2, 'the side lane broke'\n"


def test_a_failure_in_a_side_lane_fails_the_run_and_is_reported_at_the_end(
        tmp_path: Path) -> None:
    root = project(tmp_path, {"a/test_a.py": OK, "b/test_b.py": BAD})
    r = lanes(root, "side=t/b")
    assert r.returncode == 1, r.stdout + r.stderr
    report = r.stdout.rpartition("== pytest lanes")[2]
    assert "[side] FAILED t/b/test_b.py::test_bad" in report, r.stdout
    assert "lane side [t/b]: FAILED (exit 1)" in report
    assert "lane main [rest]: ok" in report
    assert r.stdout.rstrip().splitlines()[-1] == "total: 1 passed, 1 failed"
    assert "the side lane broke" in r.stdout  # the lane's own output is shown in full


def test_every_test_runs_once_across_the_lanes(tmp_path: Path) -> None:
    root = project(tmp_path, {"a/test_a.py": OK, "b/test_b.py": OK, "c/test_c.py": OK})
    r = lanes(root, "one=t/b", "two=t/c")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().splitlines()[-1] == "total: 3 passed, 0 failed"
    for name in ("main", "one", "two"):
        assert f"lane {name} [" in r.stdout and "1 passed" in r.stdout


def test_a_failure_in_main_fails_the_run(tmp_path: Path) -> None:
    root = project(tmp_path, {"a/test_a.py": BAD, "b/test_b.py": OK})
    r = lanes(root, "side=t/b")
    assert r.returncode == 1
    assert "[main] FAILED t/a/test_a.py::test_bad" in r.stdout


def test_a_lane_that_runs_no_test_fails_the_run(tmp_path: Path) -> None:
    root = project(tmp_path, {"a/test_a.py": OK, "b/conftest.py": ""})
    r = lanes(root, "empty=t/b")
    assert r.returncode == 5, r.stdout + r.stderr  # pytest's "no tests ran"
    assert "lane empty [t/b]: FAILED (exit 5)" in r.stdout


@pytest.mark.parametrize("specs, why", [
    (["side=t/a", "other=t/a"], "is in two lanes"),
    (["side=t/nowhere"], "no such path"),
    (["main=t/a"], "is taken"),
    (["side"], "expected NAME=path"),
])
def test_lanes_that_would_lose_or_repeat_tests_are_refused(
        tmp_path: Path, specs: list[str], why: str) -> None:
    root = project(tmp_path, {"a/test_a.py": OK})
    r = lanes(root, *specs)
    assert r.returncode == 2 and why in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_summary_counts() -> None:
    assert pytest_lanes.parse_counts("1 failed, 1890 passed, 3 skipped, 2 errors in 9.1s") == {
        "failed": 1, "passed": 1890, "skipped": 3, "error": 2}
    assert pytest_lanes.parse_counts("no tests ran in 0.01s") == {}


def test_a_stopped_run_tears_every_lane_down_and_shows_the_side_lanes(tmp_path: Path) -> None:
    """SIGTERM (CI's time limit) reaches both lanes as ^C: their fixtures' teardown runs,
    no test process is left, and the side lane's log is shown, not lost."""
    slow = ("import os, time\nimport pytest\n\n@pytest.fixture\ndef marked(request):\n"
            "    here = os.path.dirname(request.path)\n"
            "    open(os.path.join(here, 'pid'), 'w').write(str(os.getpid()))\n"
            "    yield\n"
            "    open(os.path.join(here, 'torn-down'), 'w').write('yes')\n\n"
            "def test_slow(marked):\n    print('side lane was here')\n    time.sleep(60)\n")
    root = project(tmp_path, {"a/test_a.py": slow, "b/test_b.py": slow})
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--root", str(root),
                             "--lane", "side=t/b", "--", "-s"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        pids = [root / "t" / d / "pid" for d in ("a", "b")]
        while not all(p.exists() and p.read_text() for p in pids):
            assert time.monotonic() < deadline, "the lanes never started their tests"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "== lane side stopped by signal 15; its log ends:" in out
    assert "side lane was here" in out.rpartition("stopped by signal")[2]
    for d in ("a", "b"):
        assert (root / "t" / d / "torn-down").exists(), f"lane of t/{d} not torn down"
        pid = int((root / "t" / d / "pid").read_text())
        assert not Path(f"/proc/{pid}").exists() or "Z" in \
            Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0], pid
