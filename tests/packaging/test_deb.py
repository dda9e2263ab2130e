"""The Debian package, built from this checkout by scripts/build-deb.sh, installs and runs
on a real systemd host: a systemd-nspawn container booted from the cached Debian tree
(nspawn.py), with the package installed by dpkg inside it.

Checked: the vnfha system user, the conffiles in /etc/vnfha, /usr/bin/vnfha and its
version (the git-derived one the package is named after), the two units (verified by
systemd-analyze, installed disabled and stopped), a coordinator started with systemctl
from the shipped config runs as vnfha and answers, and a purge takes everything away.

Time: 29 s on an idle 2-core machine with warm caches, the package build included (the
first run also downloads the wheels); a cold rootfs cache adds the debootstrap.
VNFHA_TEST_DEB=path/to/vnfha_*.deb tests a package built before instead (CI's build step).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nspawn import Machine, build_rootfs, nspawn_missing, still_alive  # tests/packaging on sys.path

from vnfha_lab.netlab import Lab, pids_in_netns

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
UNITS = ("vnfha-coordinator", "vnfha-agent")


@pytest.fixture
def host(deb_package: Path) -> Iterator[tuple[Machine, Path]]:
    """A booted machine with the freshly built .deb at /mnt/deb/<name>."""
    why = nspawn_missing()
    if why:
        pytest.fail(f"Debian package test: {why}")
    root = Path(tempfile.mkdtemp(prefix="vh-deb-"))
    lab = Lab()
    machine: Machine | None = None
    deb = deb_package
    try:
        rootfs = build_rootfs()
        h = lab.add_host("pkg", ipv4=lab.address(5))
        machine = Machine(h, rootfs, root / "pkg", binds={str(deb.parent): "/mnt/deb"})
        machine.wait_booted(timeout=300)
        yield machine, deb
    finally:
        if machine is not None:
            machine.close()
        inside = set(pids_in_netns(f"{lab.prefix}-pkg"))
        lab.close()
        left = still_alive(inside)
        shutil.rmtree(root, ignore_errors=True)
    assert not left, f"processes of the machine still alive: {left}"


def show(m: Machine, unit: str) -> dict[str, str]:
    r = m.run(f"systemctl show {unit} -p ActiveState,UnitFileState,FragmentPath,MainPID,User")
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def test_deb_installs_runs_under_systemd_and_purges(host: tuple[Machine, Path]) -> None:
    m, deb = host
    installed = m.run(f"dpkg -i /mnt/deb/{deb.name}", timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # -- the version: the package's is vnfha's own (from git), in Debian's spelling -------
    deb_version = m.run("dpkg-query -W -f='${Version}' vnfha").stdout
    assert deb_version in deb.name
    cli_version = m.run("vnfha --version")
    assert cli_version.returncode == 0, cli_version.stderr
    py_version = cli_version.stdout.split()[-1]
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?(\+[0-9a-z.]+)?", py_version), py_version
    public, _, local = py_version.partition("+")
    assert deb_version == public.replace(".dev", "~dev") + (f"+{local}" if local else "")
    assert m.run("readlink -f /usr/bin/vnfha").stdout.strip() == "/opt/vnfha/venv/bin/vnfha"
    # ... the venv was built elsewhere: no path of the build tree is left in it
    leaks = m.run("grep -rlF /deb-src/ /opt/vnfha/venv/bin /opt/vnfha/venv/pyvenv.cfg")
    assert leaks.stdout == "", leaks.stdout

    # -- the system user, like the Ansible role's ----------------------------------------
    passwd = m.run("getent passwd vnfha").stdout.strip().split(":")
    assert len(passwd) == 7, passwd
    assert 0 < int(passwd[2]) < 1000 and passwd[5] == "/var/lib/vnfha", passwd
    assert passwd[6] in ("/usr/sbin/nologin", "/sbin/nologin"), passwd

    # -- config in /etc/vnfha, as conffiles, and valid as shipped ------------------------
    conffiles = m.run("dpkg-query -W -f='${Conffiles}' vnfha").stdout
    for name in ("coordinator.yaml", "agent.yaml"):
        assert f"/etc/vnfha/{name} " in conffiles, conffiles
    for kind in ("coordinator", "agent"):
        check = m.run(f"vnfha config check --kind {kind} /etc/vnfha/{kind}.yaml")
        assert check.returncode == 0, check.stdout + check.stderr
    assert m.run("test -s /usr/share/bash-completion/completions/vnfha").returncode == 0

    # -- the units: verified, installed disabled and stopped -----------------------------
    verify = m.run("systemd-analyze verify " + " ".join(f"{u}.service" for u in UNITS))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "vnfha" not in verify.stderr, verify.stderr  # no warning about our units
    for u in UNITS:
        props = show(m, u)
        assert props["FragmentPath"].removeprefix("/usr") == f"/lib/systemd/system/{u}.service"
        assert (props["UnitFileState"], props["ActiveState"]) == ("disabled", "inactive"), props

    # -- systemctl starts the coordinator from the shipped config, as vnfha ---------------
    started = m.run("systemctl start vnfha-coordinator")
    assert started.returncode == 0, started.stderr
    status = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = m.run("vnfha --endpoint 127.0.0.1:7401 --timeout 2 status --json", timeout=30)
        if r.returncode == 0 and json.loads(r.stdout)["coordinator"]["is_leader"]:
            status = json.loads(r.stdout)
            break
        time.sleep(0.5)
    assert status is not None, m.run("journalctl -u vnfha-coordinator -n 30 --no-pager").stdout
    assert status["coordinator"]["node_id"] == "c1"
    props = show(m, "vnfha-coordinator")
    assert props["ActiveState"] == "active" and props["User"] == "vnfha", props
    uid = m.run(f"stat -c %u /proc/{props['MainPID']}").stdout.strip()
    assert uid == passwd[2]
    assert m.run("stat -c '%U %a' /var/lib/vnfha").stdout.split() == ["vnfha", "750"]
    assert m.run("ls /var/lib/vnfha").stdout.strip() != ""  # the Raft journal is there

    # -- purge: the service stops, and the package's files, config and data are gone ------
    purged = m.run("dpkg --purge vnfha", timeout=120)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert show(m, "vnfha-coordinator")["ActiveState"] in ("inactive", "failed")
    for path in ("/opt/vnfha", "/usr/bin/vnfha", "/etc/vnfha/coordinator.yaml",
                 "/lib/systemd/system/vnfha-coordinator.service", "/var/lib/vnfha"):
        assert m.run(f"test -e {path}").returncode != 0, f"{path} left after purge"


def test_deb_is_lintian_clean_at_error_level(deb_package: Path) -> None:
    """Debian's own checker finds no error in the package. What it flags that we ship on
    purpose (a private venv in /opt, its bytecode, libraries the upstream wheels embed)
    is overridden with the reason in debian/vnfha.lintian-overrides, and every override
    still matches something (none hides a tag that is gone)."""
    lintian = shutil.which("lintian")
    if lintian is None:
        pytest.fail("lintian is missing: run scripts/setup.sh")
    r = subprocess.run([lintian, "--fail-on", "error", "--display-info",
                        "--no-tag-display-limit", str(deb_package)],
                       capture_output=True, text=True, timeout=900)
    lines = r.stdout.splitlines()
    errors = [line for line in lines if line.startswith("E:")]
    assert r.returncode == 0 and not errors, (r.returncode, errors[:20], r.stderr[-2000:])
    stale = [line for line in lines if "unused-override" in line
             or "mismatched-override" in line]
    assert not stale, stale
