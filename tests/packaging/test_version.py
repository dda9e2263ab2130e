"""The version is derived from git (setuptools-scm), and a tree without git still builds.

A build from the checkout names the commit it was built from (`0.1.0.devN+g<sha>`
before the first tag `v0.1.0`, the tag's version on it), so `vnfha --version` on a host
says which code runs there. A copy of the sources without history (a tarball) builds
as the fallback version instead of failing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def build_wheel(source: Path, out: Path) -> str:
    """Build vnfha's wheel from `source` into `out`; its version."""
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--disable-pip-version-check", "--wheel-dir", str(out), str(source)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = out.glob("vnfha-*.whl")
    return wheel.name.split("-")[1]


def git(*argv: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()


def test_a_build_from_git_names_its_commit_and_a_tarball_builds_the_fallback() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="vh-ver-"))
    try:
        version = build_wheel(REPO, tmp / "git")
        commit = git("rev-parse", "HEAD")
        tag = subprocess.run(["git", "-C", str(REPO), "describe", "--tags", "--exact-match",
                              "--match", "v*"], capture_output=True, text=True).stdout.strip()
        if tag and not git("status", "--porcelain", "--untracked-files=no"):
            assert version == tag.removeprefix("v")
        else:
            m = re.fullmatch(r"\d+\.\d+\.\d+\.dev\d+\+g(?P<sha>[0-9a-f]{7,})(\.d\d{8})?",
                             version)
            assert m, version
            assert commit.startswith(m["sha"]), (version, commit)

        # the same sources without .git: the fallback of pyproject.toml
        src = tmp / "src"
        files = git("ls-files", "-z").split("\0")
        for name in filter(None, files):
            if (REPO / name).is_file() and not name.startswith("tests/"):
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, src / name)
        assert not (src / ".git").exists()
        assert build_wheel(src, tmp / "tar") == "0.1.0.dev0"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
