#!/usr/bin/env bash
# Build the wheelhouse for an air-gapped install: wheels of vnfha and of every
# dependency, in one folder that the roles copy to the hosts (vnfha_common_wheelhouse).
# Run it on the controller, with a Python of the same version and architecture as the
# hosts' (wheels of grpcio, cryptography, PyYAML are built per Python and platform).
#
#   ansible/build-wheelhouse.sh [DEST] [SOURCE]
#     DEST    default: ansible/wheelhouse
#     SOURCE  what to wheel: this checkout (default) or a requirement, e.g. vnfha==0.1.0
#   PYTHON=/usr/bin/python3.11 ansible/build-wheelhouse.sh   # another interpreter
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:-$here/wheelhouse}"
source="${2:-$here/..}"
py="${PYTHON:-python3}"
mkdir -p "$dest"
"$py" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$dest" "$source"
echo "wheelhouse $dest:"
ls -1 "$dest"
