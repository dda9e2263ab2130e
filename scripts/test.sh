#!/usr/bin/env bash
# The test command (README, and what CI runs): set up, lint, check generated
# code, run the whole suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
echo "== ruff"
ruff check .
echo "== import contracts (.importlinter)"
lint-imports
echo "== mypy --strict on the pure core"
python scripts/typecheck.py
echo "== ansible-lint (production profile)"
(cd ansible && ansible-lint --offline --profile production)
echo "== generated protobuf stubs"
python protos/generate.py --check
echo "== pytest"
python -m pytest -q "$@"
