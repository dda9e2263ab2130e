#!/usr/bin/env bash
# Build the wheelhouse for an air-gapped install: wheels of vnfha and of every
# dependency in one folder, and the same wheels in one archive next to it (DEST.tar).
# Point vnfha_common_wheelhouse at either; the archive is one transfer per host.
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
tar -cf "$dest.tar" -C "$dest" .
echo "wheelhouse $dest (and $dest.tar):"
ls -1 "$dest"
# The version is derived from git (pyproject.toml): the inventory must name it exactly.
for whl in "$dest"/vnfha-*.whl; do
    [ -e "$whl" ] || continue
    version="$(basename "$whl" | cut -d- -f2)"
    echo "vnfha_common_version: \"$version\"   # for the inventory"
done
