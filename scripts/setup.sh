#!/usr/bin/env bash
# Idempotent set-up of everything vnfha needs on a fresh Debian machine:
# system packages (only when missing) and a virtualenv in .venv with the
# package installed editable plus its dev tools. Sourced by demo.sh and test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# System packages the project uses (iproute2 for network-namespace tests).
need_apt=()
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# sshd: tests/ansible deploys with the playbook over real ssh into namespace hosts.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v sudo >/dev/null 2>&1 || need_apt+=(sudo)   # the playbook becomes root with sudo
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)  # verifies the rendered units
if ((${#need_apt[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: need root to install: ${need_apt[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${need_apt[*]}" >&2
    apt-get update -qq
    # A package's postinst must not leave a daemon running (openssh-server would start
    # sshd): without a policy-rc.d, put one in place for the install and remove it after.
    policy_rc=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy_rc=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$policy_rc" && chmod 755 "$policy_rc"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    [ -z "$policy_rc" ] || rm -f "$policy_rc"
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: Python >= 3.11 required (found $("$PY" --version 2>&1))" >&2
    exit 1
fi
stamp=".venv/.vnfha-installed"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# Reinstall when pyproject.toml changed since the last install.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
