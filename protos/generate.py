"""Regenerate the Python stubs for protos/vnfha/v1 (the one command: `python protos/generate.py`).

`--check` regenerates into a temporary folder and fails if the checked-in stubs
differ, so CI catches a .proto edited without regenerating.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent
PROTO_DIR = ROOT / "vnfha" / "v1"


def generate(out: Path) -> list[str]:
    protos = sorted(p.relative_to(ROOT).as_posix() for p in PROTO_DIR.glob("*.proto"))
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = ["protoc", f"-I{ROOT}", f"-I{well_known}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return [p.name for p in (out / "vnfha" / "v1").iterdir() if p.name.endswith((".py", ".pyi"))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if checked-in stubs are stale")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
        gen_dir = Path(tmp) / "vnfha" / "v1"
        stale = [f for f in files
                 if not (PROTO_DIR / f).exists() or not filecmp.cmp(gen_dir / f, PROTO_DIR / f,
                                                                   shallow=False)]
        if args.check:
            if stale:
                print("stale generated stubs: " + ", ".join(sorted(stale))
                      + "\nrun: python protos/generate.py", file=sys.stderr)
                return 1
            print(f"generated stubs up to date ({len(files)} files)")
            return 0
        for f in files:
            shutil.copyfile(gen_dir / f, PROTO_DIR / f)
        print(f"wrote {len(files)} files to {PROTO_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
