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
# etcd for the etcd store's tests and benchmarks (the fixtures start their own, on
# loopback; the package's own daemon must not run, see below).
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: need root to install: ${need_apt[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${need_apt[*]}" >&2
    apt-get update -qq
    # etcd-server's postinst starts a system etcd on :2379 through invoke-rc.d unless a
    # policy-rc.d forbids it: forbid it for this install if the machine has none.
    policy_added=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
    if [[ " ${need_apt[*]} " == *" etcd-server "* ]]; then
        # Belt and braces: if a system etcd came up anyway, stop it and keep it off.
        if [ -d /run/systemd/system ]; then
            systemctl disable --now etcd.service >/dev/null 2>&1 || true
        elif [ -x /etc/init.d/etcd ]; then
            /etc/init.d/etcd stop >/dev/null 2>&1 || true
            update-rc.d etcd disable >/dev/null 2>&1 || true
        fi
    fi
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
