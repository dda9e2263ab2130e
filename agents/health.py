"""Per-member health checks (tcp, http, exec) with rise/fall hysteresis.

The agent reports each member's health in every keepalive; the coordinators
demote an unhealthy active. A single failed probe must not cause a failover
(that is what `fall` is for), and a member that just came up must prove itself
before it can be elected (that is what `rise` is for).

A member with checks starts **unhealthy** and becomes healthy after `rise`
consecutive successes of every check: a VNFC that is still starting must not
win an election in the first keepalive after the agent starts. A member with
no checks is always healthy (the agent's keepalive is its only liveness).

The rise/fall logic (`RiseFall`) is pure; the probes do I/O with a timeout;
`HealthMonitor` runs them in background threads.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vnfha.agents.realtime import children_ordinary
from vnfha.coordinator.confparse import (
    ConfigError,
    Ctx,
    check_keys,
    choice,
    duration,
    fmt,
    integer,
    lt,
    section,
    tname,
)

__all__ = ["Check", "CheckSpec", "ConfigError", "ExecCheck", "HealthMonitor", "HttpCheck",
           "RiseFall", "TcpCheck", "build_check", "parse_checks"]

log = logging.getLogger("vnfha.agent.health")


# -- hysteresis (pure) -------------------------------------------------------------------------


#: A probe this long past its timeout is stuck; the watchdog looks this often.
STALL_GRACE = 1.0
STALL_POLL = 0.1


class RiseFall:
    """Flip to healthy after `rise` consecutive successes, to unhealthy after `fall`
    consecutive failures; anything in between keeps the current state."""

    def __init__(self, rise: int, fall: int, initially_healthy: bool = False) -> None:
        if rise < 1 or fall < 1:
            raise ValueError("rise and fall must be >= 1")
        self.rise = rise
        self.fall = fall
        self.healthy = initially_healthy
        self._streak = 0  # consecutive results that disagree with the current state

    def observe(self, ok: bool) -> bool | None:
        """Record one probe result; return the new state if it flipped, else None."""
        if ok == self.healthy:
            self._streak = 0
            return None
        self._streak += 1
        if self._streak < (self.rise if ok else self.fall):
            return None
        self.healthy = ok
        self._streak = 0
        return ok

    def force_down(self) -> None:
        """Unhealthy now, without waiting for `fall` results (a probe that is stuck
        produces none); `rise` successes bring it back as usual."""
        self.healthy = False
        self._streak = 0


# -- probes ------------------------------------------------------------------------------------


class Check(Protocol):
    def check(self, timeout: float) -> tuple[bool, str]:
        """Probe once within `timeout` seconds: (ok, short reason)."""
        ...


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True)
class TcpCheck:
    """OK when a TCP connection to host:port is established within the timeout."""

    host: str
    port: int

    def check(self, timeout: float) -> tuple[bool, str]:
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                return True, "connected"
        except OSError as e:
            return False, f"connect failed: {_short(e)}"

    def __str__(self) -> str:
        return f"tcp {self.host}:{self.port}"


@dataclass(frozen=True)
class HttpCheck:
    """OK when `GET url` answers `expect_status`. Plain http.client on purpose: no
    proxies from the environment, no redirects followed, no TLS to configure.
    The timeout bounds each socket operation (connect, send, each read)."""

    url: str
    expect_status: int = 200

    def check(self, timeout: float) -> tuple[bool, str]:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            return False, f"unsupported url {self.url!r}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        try:
            conn.request("GET", path, headers={"User-Agent": "vnfha-agent",
                                               "Connection": "close"})
            resp = conn.getresponse()
            resp.read(64 * 1024)  # drain a little so the server sees a clean close
            status = resp.status
        except (OSError, http.client.HTTPException) as e:
            return False, f"GET failed: {_short(e)}"
        finally:
            conn.close()
        if status != self.expect_status:
            return False, f"status {status}, expected {self.expect_status}"
        return True, f"status {status}"

    def __str__(self) -> str:
        return f"http {self.url}"


@dataclass(frozen=True)
class ExecCheck:
    """OK when the command exits 0 within the timeout. On timeout its whole process
    group is killed and reaped, so a hung probe leaves neither processes nor zombies."""

    argv: tuple[str, ...]

    def check(self, timeout: float) -> tuple[bool, str]:
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    start_new_session=True, close_fds=True)
        except OSError as e:
            return False, f"cannot run: {_short(e)}"
        with proc:
            try:
                _, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                return False, f"timed out after {fmt(timeout)}s (killed)"
        if proc.returncode == 0:
            return True, "exit 0"
        tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
        return False, f"exit {proc.returncode}" + (f": {tail[0][:160]}" if tail else "")

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        try:  # start_new_session: the pid is the group id; children go too
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.kill()
        try:
            proc.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:  # a child escaped the group and holds stderr
            if proc.stderr is not None:
                proc.stderr.close()
        proc.wait()  # reaps: no zombie

    def __str__(self) -> str:
        return "exec " + " ".join(self.argv)


# -- configuration -----------------------------------------------------------------------------

KINDS = ("tcp", "http", "exec")
COMMON_KEYS = ("kind", "interval", "timeout", "rise", "fall")
KIND_KEYS = {"tcp": ("host", "port"), "http": ("url", "expect_status"), "exec": ("argv",)}
DEFAULT_INTERVAL = 1.0
DEFAULT_RISE = 2
DEFAULT_FALL = 2


@dataclass(frozen=True)
class CheckSpec:
    """One configured check. `timeout` < `interval`, so probes never pile up."""

    kind: str
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_INTERVAL / 2
    rise: int = DEFAULT_RISE
    fall: int = DEFAULT_FALL
    host: str = ""
    port: int = 0
    url: str = ""
    expect_status: int = 200
    argv: tuple[str, ...] = ()

    def describe(self) -> str:
        return str(build_check(self))


def build_check(spec: CheckSpec) -> TcpCheck | HttpCheck | ExecCheck:
    if spec.kind == "tcp":
        return TcpCheck(spec.host, spec.port)
    if spec.kind == "http":
        return HttpCheck(spec.url, spec.expect_status)
    if spec.kind == "exec":
        return ExecCheck(spec.argv)
    raise ValueError(f"unknown check kind {spec.kind!r}")


def parse_checks(items: Any, where: str, source: str = "<agent config>"
                 ) -> tuple[CheckSpec, ...]:
    """Validate a member's `checks:` list (see docs/agent.md); raise ConfigError naming
    the setting. `timeout` defaults to half the interval."""
    ctx = Ctx(source)
    if items is None:
        return ()
    if not isinstance(items, list):
        ctx.fail(f"{where} must be a list of checks, got {tname(items)}")
    return tuple(_parse_one(ctx, f"{where}[{i}]", item) for i, item in enumerate(items))


def _parse_one(ctx: Ctx, where: str, item: Any) -> CheckSpec:
    sec: Mapping[str, Any] = section(ctx, where, item)
    if "kind" not in sec:
        ctx.fail(f"{where}.kind is required (one of: {', '.join(KINDS)})")
    kind = choice(ctx, f"{where}.kind", sec["kind"], KINDS)
    check_keys(ctx, where, sec, (*COMMON_KEYS, *KIND_KEYS[kind]))
    interval = duration(ctx, f"{where}.interval", sec.get("interval", DEFAULT_INTERVAL))
    timeout = duration(ctx, f"{where}.timeout", sec.get("timeout", interval / 2))
    if not lt(timeout, interval):
        ctx.fail(f"{where}.timeout ({fmt(timeout)}) must be < {where}.interval "
                 f"({fmt(interval)}): a probe must finish before the next one is due")
    rise = integer(ctx, f"{where}.rise", sec.get("rise", DEFAULT_RISE))
    fall = integer(ctx, f"{where}.fall", sec.get("fall", DEFAULT_FALL))
    for key, value in (("rise", rise), ("fall", fall)):
        if value < 1:
            ctx.fail(f"{where}.{key} ({value}) must be >= 1")
    common = {"kind": kind, "interval": interval, "timeout": timeout, "rise": rise,
              "fall": fall}
    if kind == "tcp":
        return CheckSpec(**common, host=_host(ctx, where, sec), port=_port(ctx, where, sec))
    if kind == "http":
        return CheckSpec(**common, url=_url(ctx, where, sec),
                         expect_status=_status(ctx, where, sec))
    return CheckSpec(**common, argv=_argv(ctx, where, sec))


def _host(ctx: Ctx, where: str, sec: Mapping[str, Any]) -> str:
    host = sec.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host):
        ctx.fail(f"{where}.host must be a host name or address, got {host!r}")
    return host


def _port(ctx: Ctx, where: str, sec: Mapping[str, Any]) -> int:
    if "port" not in sec:
        ctx.fail(f"{where}.port is required for a tcp check")
    port = integer(ctx, f"{where}.port", sec["port"])
    if not 1 <= port <= 65535:
        ctx.fail(f"{where}.port ({port}) must be in 1..65535")
    return port


def _url(ctx: Ctx, where: str, sec: Mapping[str, Any]) -> str:
    if "url" not in sec:
        ctx.fail(f"{where}.url is required for an http check")
    url = sec["url"]
    if not isinstance(url, str):
        ctx.fail(f"{where}.url must be a string, got {tname(url)}")
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or 1 <= parts.port <= 65535
    except ValueError:
        port_ok = False
        parts = urllib.parse.urlsplit("")
    if parts.scheme != "http" or not parts.hostname or not port_ok:
        ctx.fail(f"{where}.url ({url!r}) must be an http:// URL with a host "
                 f"(https is not supported: probe a local plain-http port)")
    return url


def _status(ctx: Ctx, where: str, sec: Mapping[str, Any]) -> int:
    status = integer(ctx, f"{where}.expect_status", sec.get("expect_status", 200))
    if not 100 <= status <= 599:
        ctx.fail(f"{where}.expect_status ({status}) must be an HTTP status in 100..599")
    return status


def _argv(ctx: Ctx, where: str, sec: Mapping[str, Any]) -> tuple[str, ...]:
    argv = sec.get("argv")
    if (not isinstance(argv, list) or not argv
            or not all(isinstance(a, str) for a in argv) or not argv[0]):
        ctx.fail(f"{where}.argv must be a non-empty list of strings (the command and its "
                 f"arguments; no shell), got {argv!r}")
    return tuple(argv)


# -- the monitor -------------------------------------------------------------------------------

MemberKey = tuple[str, str]
# (group, member, healthy, reason); called in order, from a monitor thread.
HealthCallback = Callable[[str, str, bool, str], None]


class HealthMonitor:
    """Runs every check on its own interval in its own small thread (a slow exec probe
    of one check cannot delay another) and tracks each member's health: healthy iff
    every one of its checks is healthy."""

    def __init__(self, checks: Mapping[MemberKey, Sequence[CheckSpec]],
                 on_change: HealthCallback | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._specs = {key: tuple(specs) for key, specs in checks.items()}
        self._on_change = on_change or (lambda *a: None)
        self._clock = clock
        # RLock: on_change runs under it (so flips are reported in order) and may call
        # healthy().
        self._lock = threading.RLock()
        self._states = {key: [RiseFall(s.rise, s.fall) for s in specs]
                        for key, specs in self._specs.items()}
        self._healthy = {key: not specs for key, specs in self._specs.items()}
        self._reasons = {key: "no checks" if not specs else "starting: no check passed yet"
                         for key, specs in self._specs.items()}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Probes running now: (member, check index) -> start time. A probe past its
        # timeout by STALL_GRACE is stuck (e.g. an HTTP server trickling bytes keeps
        # every single read inside the timeout): the watchdog fails the check.
        self._probing: dict[tuple[MemberKey, int], float] = {}

    def healthy(self, group: str, member: str) -> bool:
        """A member without checks (or not known here) is healthy."""
        with self._lock:
            return self._healthy.get((group, member), True)

    def reason(self, group: str, member: str) -> str:
        with self._lock:
            return self._reasons.get((group, member), "no checks")

    def start(self) -> None:
        if any(self._specs.values()):
            t = threading.Thread(target=self._watchdog, name="health-watchdog", daemon=True)
            t.start()
            self._threads.append(t)
        for key, specs in self._specs.items():
            for i, spec in enumerate(specs):
                t = threading.Thread(target=self._run, args=(key, i, spec, build_check(spec)),
                                     name=f"health-{key[0]}/{key[1]}#{i}", daemon=True)
                t.start()
                self._threads.append(t)

    def stop(self) -> None:
        """Stop and join; bounded by the longest probe timeout (a running probe is
        allowed to finish: its own timeout kills it)."""
        self._stop.set()
        limit = max((s.timeout for specs in self._specs.values() for s in specs), default=0)
        deadline = time.monotonic() + limit + 2.0
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._threads:
            log.warning("health checks still running after stop",
                        extra={"threads": [t.name for t in self._threads]})

    def _run(self, key: MemberKey, index: int, spec: CheckSpec, probe: Check) -> None:
        children_ordinary()  # exec checks run as ordinary processes (agents/realtime.py)
        next_at = self._clock()
        while not self._stop.wait(max(0.0, next_at - self._clock())):
            started = self._clock()
            with self._lock:
                self._probing[(key, index)] = started
            try:
                ok, why = probe.check(spec.timeout)
            except Exception as e:  # a probe bug must read as a failure, not kill the thread
                ok, why = False, f"probe error: {_short(e)}"
            finally:
                with self._lock:
                    self._probing.pop((key, index), None)
            if self._stop.is_set():
                return
            self._record(key, index, spec, probe, ok, why)
            # Fixed rate from the probe's start; an overrun runs the next one at once.
            next_at = started + spec.interval

    def _watchdog(self) -> None:
        """Fail a check whose probe is stuck past its timeout (fail-stop, not "healthy"
        forever on the last result); the probe's eventual result counts as usual."""
        flagged: set[tuple[MemberKey, int, float]] = set()
        while not self._stop.wait(STALL_POLL):
            now = self._clock()
            with self._lock:
                running = list(self._probing.items())
            for (key, index), started in running:
                spec = self._specs[key][index]
                over = now - started - spec.timeout
                if over < STALL_GRACE or (key, index, started) in flagged:
                    continue
                flagged.add((key, index, started))
                self._force_down(key, index, spec, f"{spec.describe()}: probe stuck "
                                 f"{fmt(now - started)}s, past its {fmt(spec.timeout)}s timeout")
            live = {(k, i, t) for (k, i), t in running}
            flagged &= live

    def _force_down(self, key: MemberKey, index: int, spec: CheckSpec, reason: str) -> None:
        log.error("health check stuck: member reported unhealthy",
                  extra={"group": key[0], "member": key[1], "reason": reason})
        with self._lock:
            self._states[key][index].force_down()
            if not self._healthy[key]:
                return
            self._healthy[key] = False
            self._reasons[key] = reason
            try:
                self._on_change(key[0], key[1], False, reason)
            except Exception:
                log.exception("health change callback failed")

    def _record(self, key: MemberKey, index: int, spec: CheckSpec, probe: Check, ok: bool,
                why: str) -> None:
        with self._lock:
            states = self._states[key]
            flipped = states[index].observe(ok)
            if flipped is None:
                return
            now_healthy = all(s.healthy for s in states)
            if now_healthy == self._healthy[key]:
                return  # this check flipped but another one still decides the member
            self._healthy[key] = now_healthy
            if now_healthy:
                reason = f"all checks passing ({probe}: {why})"
            else:
                reason = f"{probe}: {why} ({spec.fall} consecutive failures)"
            self._reasons[key] = reason
            log.info("member health changed",
                     extra={"group": key[0], "member": key[1], "healthy": now_healthy,
                            "reason": reason})
            try:
                self._on_change(key[0], key[1], now_healthy, reason)
            except Exception:
                log.exception("health change callback failed")
