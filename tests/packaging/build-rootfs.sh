#!/usr/bin/env bash
# Build (once) the Debian root filesystem that the systemd host tests boot with
# systemd-nspawn, and print its path.
#
# The tree is cached under $VNFHA_TEST_CACHE (default /var/cache/vnfha-test) as
# rootfs-<key>, where <key> is a hash of this script: a change to the suite, the
# mirror or the package list below names a new tree, so it is built again, and the
# older trees are removed once the new one is complete. The containers boot it
# read-only with a throw-away overlay (--volatile=overlay), so a test never changes it.
#
# Cold: about 1-3 minutes (debootstrap downloads ~60 MB); warm: instant.
#   tests/packaging/build-rootfs.sh          # prints the path of the tree
set -euo pipefail

SUITE=bookworm
MIRROR="${VNFHA_TEST_MIRROR:-http://deb.debian.org/debian}"
# What a managed host has: systemd as PID 1, sshd for Ansible, Python with venv for the
# roles, the tools the agent drives (ip, nft), sudo, adduser for the package's postinst.
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,python3,python3-venv,iproute2,nftables,sudo,adduser
CACHE="${VNFHA_TEST_CACHE:-/var/cache/vnfha-test}"

[ "$(id -u)" -eq 0 ] || { echo "build-rootfs: needs root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-rootfs: no debootstrap: run scripts/setup.sh" >&2; exit 1; }

# The mirror is part of what the tree is; the cache folder is not.
key="$( (cat "${BASH_SOURCE[0]}"; echo "$MIRROR") | sha256sum | cut -c1-12)"
tree="$CACHE/rootfs-$key"
if [ -f "$tree/.vnfha-complete" ]; then
    echo "$tree"
    exit 0
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 900 9 || { echo "build-rootfs: $CACHE/.lock held for 15 minutes" >&2; exit 1; }
if [ -f "$tree/.vnfha-complete" ]; then  # another run built it while we waited
    echo "$tree"
    exit 0
fi
work="$CACHE/.building-$key"
rm -rf "$work"
log="$CACHE/debootstrap-$key.log"
echo "build-rootfs: debootstrap $SUITE into $tree (log: $log)" >&2
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work" "$MIRROR" >"$log" 2>&1; then
    echo "build-rootfs: debootstrap failed, last lines of $log:" >&2
    tail -n 15 "$log" >&2
    rm -rf "$work"
    exit 1
fi
# A machine gets its name from systemd-nspawn --machine, its identity at first boot.
rm -f "$work/etc/hostname"
: > "$work/etc/machine-id"
# Boot fast and quiet: no getty on the console, no timers that fetch or clean up.
ln -sf /dev/null "$work/etc/systemd/system/console-getty.service"
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
            systemd-tmpfiles-clean.timer; do
    ln -sf /dev/null "$work/etc/systemd/system/$unit"
done
# sshd: root by key only; the test binds its key at /root/.ssh/authorized_keys.
mkdir -p "$work/etc/ssh/sshd_config.d" "$work/root/.ssh"
chmod 700 "$work/root/.ssh"
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' \
    > "$work/etc/ssh/sshd_config.d/vnfha-test.conf"
apt-get -o RootDir="$work" clean >/dev/null 2>&1 || rm -rf "$work/var/cache/apt/archives/"*.deb
touch "$work/.vnfha-complete"
rm -rf "$tree"
mv "$work" "$tree"
# Only one tree is kept: remove those of older keys.
for old in "$CACHE"/rootfs-*; do
    [ "$old" = "$tree" ] || rm -rf "$old"
done
echo "$tree"
