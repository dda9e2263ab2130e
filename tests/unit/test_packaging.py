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


def test_the_product_wheel_ships_no_lab_harness() -> None:
    """The harness lives in lab/ as its own distribution (vnfha-lab): the product
    wheel must name none of it, and no harness module may sit in a product folder."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert not [p for p in tool["packages"] if p.startswith("vnfha_lab")]
    lab = tomllib.loads((ROOT / "lab" / "pyproject.toml").read_text())
    assert lab["project"]["name"] == "vnfha-lab"
    harness = {p.name for p in (ROOT / "lab" / "vnfha_lab").glob("*.py")} - {"__init__.py"}
    for folder in tool["package-dir"].values():
        assert not harness & {p.name for p in (ROOT / folder).rglob("*.py")}, folder


def test_test_file_names_are_unique() -> None:
    """pytest imports test modules by basename in folders without __init__.py: two
    files of one name stop the whole suite at collection (seen: test_overload.py in
    both tests/unit and tests/integration)."""
    names: dict[str, list[str]] = {}
    for f in (ROOT / "tests").rglob("test_*.py"):
        names.setdefault(f.name, []).append(str(f.relative_to(ROOT)))
    assert {n: fs for n, fs in names.items() if len(fs) > 1} == {}
