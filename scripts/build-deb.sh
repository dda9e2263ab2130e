#!/usr/bin/env bash
# Build the Debian package of vnfha from this checkout with Debian's own tooling
# (dpkg-buildpackage, debhelper; debian/ holds the recipe) and put it in dist/.
#
#   scripts/build-deb.sh [OUTDIR]     # default: dist/
#
# 1. installs the build dependencies from Debian when missing (needs root then);
# 2. builds a wheelhouse (vnfha's dependencies and build requirements, from the package
#    index; cached in build/deb-wheelhouse), so dpkg-buildpackage itself needs no
#    network: debian/rules installs from it alone;
# 3. dpkg-buildpackage -b -us -uc, then moves vnfha_<version>_<arch>.deb to OUTDIR.
# The version is derived from git (see pyproject.toml); prints the .deb's path.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
out="${1:-$ROOT/dist}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# Build dependencies, from Debian (debian/control's Build-Depends plus the tools).
need=()
[ -x /usr/bin/dpkg-buildpackage ] || need+=(dpkg-dev)
[ -x /usr/bin/dh ] || need+=(debhelper)
[ -x /usr/bin/fakeroot ] || need+=(fakeroot)
command -v git >/dev/null 2>&1 || need+=(git)
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "build-deb: need root to install: ${need[*]} (or: apt-get install ${need[*]})" >&2
        exit 1
    fi
    echo "build-deb: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >/dev/null
fi
# Anything else debian/control asks for, said clearly (dpkg-buildpackage would too).
if ! missing="$(dpkg-checkbuilddeps 2>&1)"; then
    echo "build-deb: $missing" >&2
    exit 1
fi

# The wheelhouse: what `pip install .` needs, as wheels. Kept between builds; pip wheel
# only fetches what is not there yet.
wheelhouse="$ROOT/build/deb-wheelhouse"
mkdir -p "$wheelhouse"
/usr/bin/python3 -m venv "$ROOT/build/deb-tools"
"$ROOT/build/deb-tools/bin/python" -m pip install --quiet --disable-pip-version-check \
    "setuptools-scm>=8,<11"
"$ROOT/build/deb-tools/bin/python" -m pip wheel --quiet --disable-pip-version-check \
    --wheel-dir "$wheelhouse" . "setuptools>=77" "setuptools-scm>=8,<11" wheel
rm -f "$wheelhouse"/vnfha-*.whl  # built again from the sources by debian/rules

# The version, derived from git here in the checkout (the copy below has no history).
version="$("$ROOT/build/deb-tools/bin/python" -m setuptools_scm 2>/dev/null | tail -n 1)" || true
if [ -z "$version" ]; then
    echo "build-deb: could not derive the version from git (setuptools_scm)" >&2
    exit 1
fi

# dpkg-buildpackage writes its results next to the source folder: build in a copy of
# the checkout's files (tracked, and new ones not ignored), so nothing lands outside
# build/ and no earlier build's leftovers get in.
stage="$ROOT/build/deb-src"
rm -rf "$stage"
mkdir -p "$stage/vnfha"
git ls-files -z --cached --others --exclude-standard | \
    (cd "$ROOT" && while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) | \
    tar --null -T - -cf - | tar -xf - -C "$stage/vnfha"

echo "build-deb: building vnfha $version" >&2
log="$ROOT/build/deb-build.log"
if ! (cd "$stage/vnfha" && SETUPTOOLS_SCM_PRETEND_VERSION="$version" \
        VNFHA_WHEELHOUSE="$wheelhouse" dpkg-buildpackage -b -us -uc) >"$log" 2>&1; then
    echo "build-deb: dpkg-buildpackage failed, last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
debs=("$stage"/vnfha_*.deb)
[ -e "${debs[0]}" ] || { echo "build-deb: no .deb in $stage (see $log)" >&2; exit 1; }
for deb in "${debs[@]}"; do
    mv -f "$deb" "$out/"
    echo "$out/$(basename "$deb")"
done
