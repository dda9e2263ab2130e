"""The wheel ships every product package: a package folder missing from pyproject's
`packages` list installs nothing, and a deployed `vnfha` then fails on import (seen:
vnfha.coordinator.security was missing, so no Ansible-deployed host could start)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_in_the_wheel() -> None:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    mapping = tool["package-dir"]  # import name -> folder
    expected = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            expected.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert expected - listed == set(), "add these to [tool.setuptools] packages"
