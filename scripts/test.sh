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
if [ $# -gt 0 ] || [ "${VNFHA_TEST_LANES:-}" = "1" ]; then
    # Arguments (a folder, -k, -x ...) or VNFHA_TEST_LANES=1: one plain pytest process.
    exec python -m pytest -q "$@"
fi
# The whole suite: the deployment tests (playbook runs over ssh into namespace hosts,
# systemd containers, a .deb build: mostly waiting) in a second pytest process beside
# the rest, which streams live; one report at the end (docs/testing.md).
# VNFHA_TEST_LANES="NAME=path,path NAME=path ..." names other side lanes instead.
lanes=()
for spec in ${VNFHA_TEST_LANES:-deploy=tests/ansible,tests/packaging}; do
    lanes+=(--lane "$spec")
done
exec python scripts/pytest_lanes.py "${lanes[@]}"
