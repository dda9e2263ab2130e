"""The Debian package the packaging tests share: built once per test session."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def deb_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb of this checkout, from scripts/build-deb.sh (minutes cold, ~30 s warm).

    VNFHA_TEST_DEB=path/to/vnfha_*.deb tests a package built before instead (CI's build
    step). One build serves test_deb.py and test_systemd_hosts.py alike."""
    if os.environ.get("VNFHA_TEST_DEB"):
        deb = Path(os.environ["VNFHA_TEST_DEB"]).resolve()
    else:
        out = tmp_path_factory.mktemp("deb")
        build = subprocess.run(["bash", str(REPO / "scripts" / "build-deb.sh"), str(out)],
                               capture_output=True, text=True, timeout=1800)
        assert build.returncode == 0, build.stderr[-3000:]
        deb = Path(build.stdout.strip().splitlines()[-1])
    assert deb.is_file() and deb.suffix == ".deb", deb
    return deb
