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
# HAProxy for the active/active load-balancer adapter (agents/lb) and its e2e tests.
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
# sshd: tests/ansible deploys with the playbook over real ssh into namespace hosts.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v sudo >/dev/null 2>&1 || need_apt+=(sudo)   # the playbook becomes root with sudo
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)  # verifies the rendered units
# Disk-fault tests: a small ext4 on a loop device that the test shuts down (EIO).
command -v mkfs.ext4 >/dev/null 2>&1 || need_apt+=(e2fsprogs)
command -v losetup >/dev/null 2>&1 || need_apt+=(mount)
# nft: the agent's kernel-enforced VIP lease (nftables set with millisecond timeouts),
# and the nemesis (tests/nemesis) drops packets inside a namespace with it.
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
# Prometheus: the metrics e2e test scrapes a namespace cluster with a real server
# (tests/e2e/test_netns_metrics.py). Without Recommends: no node-exporter.
need_norec=()
command -v prometheus >/dev/null 2>&1 || need_norec+=(prometheus)
# Packaging (scripts/build-deb.sh, tests/packaging): Debian's build tools for the .deb,
# and real systemd hosts for its tests: systemd-nspawn containers booted from a Debian
# tree that debootstrap makes (cached in /var/cache/vnfha-test).
[ -x /usr/bin/dpkg-buildpackage ] || need_norec+=(dpkg-dev)
[ -x /usr/bin/dh ] || need_norec+=(debhelper)
[ -x /usr/bin/fakeroot ] || need_norec+=(fakeroot)
command -v git >/dev/null 2>&1 || need_norec+=(git)
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need_norec+=(python3-venv)
# The Ansible role's OS packages (vnfha_common_system_packages): the playbook test's hosts
# share this machine's /usr (tests/ansible/sshlab.py), so they must be here already. Left
# to the hosts, five dpkg runs unpacked python3-packaging into the one /usr at once and
# three failed ("dpkg returned an error code (1)").
dpkg -s python3-packaging >/dev/null 2>&1 || need_norec+=(python3-packaging)
command -v systemd-nspawn >/dev/null 2>&1 || need_norec+=(systemd-container)
command -v debootstrap >/dev/null 2>&1 || need_norec+=(debootstrap)
# lintian: tests/packaging/test_deb.py checks the .deb with Debian's own checker.
command -v lintian >/dev/null 2>&1 || need_norec+=(lintian)
if ((${#need_apt[@]} + ${#need_norec[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: need root to install: ${need_apt[*]} ${need_norec[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${need_apt[*]} ${need_norec[*]}" >&2
    apt-get update -qq
    # A package's postinst must not leave a daemon running (etcd-server's would start a
    # system etcd on :2379, haproxy's one on :80 with the stock config, openssh-server's
    # sshd): deny service starts while installing, unless the host has a policy already.
    own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    if ((${#need_apt[@]})); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    fi
    if ((${#need_norec[@]})); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need_norec[@]}" >/dev/null
    fi
    if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    # Belt and braces: if a daemon of a package installed just now came up anyway,
    # stop it and keep it off (only those: a host's own running services are left be).
    for pkg_svc in etcd-server:etcd haproxy:haproxy openssh-server:ssh prometheus:prometheus; do
        pkg=${pkg_svc%%:*} svc=${pkg_svc##*:}
        [[ " ${need_apt[*]} ${need_norec[*]} " == *" $pkg "* ]] || continue
        if [ -d /run/systemd/system ]; then
            systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$svc" ]; then
            "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
            update-rc.d "$svc" disable >/dev/null 2>&1 || true
        fi
    done
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
# Reinstall when either pyproject.toml changed since the last install. The lab
# harness (lab/: the demo, the tests' namespace clusters) is its own distribution,
# so the product wheel ships none of it.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ lab/pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[dev]'
    .venv/bin/python -m pip install -q --no-deps -e ./lab
    touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
