"""`mypy --strict` over the pure core: the modules that .importlinter's pure-core
contract lists (one list, so a module joining the core is type-checked too).

The repository keeps one folder per part (coordinator/, agents/, protos/) that the
install maps onto one import root, `vnfha`; mypy resolves imports by folder, so it
runs on a mirror of that root made of symlinks (.typecheck/vnfha/...). Errors in
modules the core imports but which are not core are not reported here.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT / ".typecheck"
PARTS = {"coordinator": ROOT / "coordinator", "agents": ROOT / "agents",
         "v1": ROOT / "protos" / "vnfha" / "v1"}


def core_modules() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    raw = cfg["importlinter:contract:pure-core"]["source_modules"]
    return [m.strip() for m in raw.splitlines() if m.strip()]


def mirror() -> Path:
    pkg = MIRROR / "vnfha"
    pkg.mkdir(parents=True, exist_ok=True)
    for name, target in PARTS.items():
        link = pkg / name
        if not link.is_symlink() or link.resolve() != target.resolve():
            link.unlink(missing_ok=True)
            link.symlink_to(target, target_is_directory=True)
    return pkg


def main() -> int:
    pkg = mirror()
    files = []
    for mod in core_modules():
        rel = Path(*mod.split(".")[1:])
        path = pkg / rel.with_suffix(".py")
        if not path.exists():
            path = pkg / rel / "__init__.py"
        if not path.exists():
            print(f"typecheck: {mod} (listed in .importlinter) has no file", file=sys.stderr)
            return 2
        files.append(str(path.relative_to(MIRROR)))
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), *files]
    return subprocess.run(cmd, cwd=MIRROR).returncode


if __name__ == "__main__":
    sys.exit(main())
