#!/usr/bin/env bash
# The main job (README): set up, then run `vnfha demo`, a real cluster that
# fails over in front of you and cleans up after itself.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec vnfha demo "$@"
