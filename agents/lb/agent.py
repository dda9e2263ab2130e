"""Keep a local HAProxy backend in step with an active-active group's pool.

Runs inside the vnfha agent on a load-balancer host (an `lb:` section in its
config). It watches the pool on every coordinator (the snapshot with the
highest revision wins, as for role assignments), and reconciles HAProxy on
every pool change and every `reconcile_interval`: it reads `show servers
state`, sets each member's server `ready` or `maint`/`drain`, reads back, and
only then reports the pool version as applied (ReportPoolApplied, to every
coordinator). The coordinators request a member's recovery only after that
report, so the VNF manager never heals a member that still takes traffic.

The timer pass is what survives an HAProxy reload: a reloaded HAProxy starts
from its config's server states, the next pass sees the drift and re-applies.

With `health_source: haproxy` each report also carries what HAProxy's own
health checks say of every server (LB as the cluster manager).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc

from vnfha.agents.lb.config import LbConfig
from vnfha.agents.lb.diff import ServerState, plan
from vnfha.agents.lb.haproxy import HaproxyAdmin, HaproxyError
from vnfha.agents.session import FAST_RECONNECT
from vnfha.coordinator.security.tls import Stubs, TlsFiles
from vnfha.v1 import pool_pb2, pool_pb2_grpc, types_pb2

log = logging.getLogger("vnfha.agent.lb")


class LbAgent:
    def __init__(self, node: str, endpoints: list[str], cfg: LbConfig,
                 admin: HaproxyAdmin | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 tls: TlsFiles | None = None) -> None:
        self.node = node
        self.endpoints = endpoints
        self.cfg = cfg
        self.admin = admin or HaproxyAdmin(cfg.admin_socket)
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: pool_pb2.WatchPoolResponse | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._stubs = Stubs(endpoints, pool_pb2_grpc.PoolServiceStub, tls, FAST_RECONNECT)
        self._calls: list[grpc.Future | None] = [None] * len(endpoints)
        self._threads: list[threading.Thread] = []
        self._senders = ThreadPoolExecutor(max_workers=max(1, len(endpoints)),
                                           thread_name_prefix="lb-report")
        self.applied_version = 0  # last version HAProxy was verified to reflect
        self.reported: dict[int, int] = {}  # coordinator index -> version it acknowledged
        self._last_health: dict[str, tuple[bool, str]] = {}
        self._haproxy_ok: bool | None = None
        self.reconciles = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        targets = [(self._reconciler, "lb-reconcile")]
        targets += [(lambda i=i: self._watch(i), f"lb-watch-{i}")
                    for i in range(len(self.endpoints))]
        for fn, tname in targets:
            t = threading.Thread(target=fn, name=f"{self.node}-{tname}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        for call in self._calls:
            if call is not None:
                call.cancel()
        self._stubs.close()
        for t in self._threads:
            t.join(timeout=2)
        self._senders.shutdown(wait=False, cancel_futures=True)

    # -- the pool --------------------------------------------------------------------------

    def _watch(self, i: int) -> None:
        """Watch one coordinator; the snapshot with the highest revision wins, so a
        lagging coordinator cannot bring an excluded member back."""
        while not self._stop.is_set():
            try:
                call = self._stubs[i].WatchPool(pool_pb2.WatchPoolRequest(group=self.cfg.group))
                self._calls[i] = call
                for resp in call:
                    with self._lock:
                        if self._latest is not None and resp.revision <= self._latest.revision:
                            continue
                        self._latest = resp
                    log.debug("pool snapshot", extra={
                        "node": self.node, "group": self.cfg.group, "coordinator":
                        self.endpoints[i], "revision": resp.revision,
                        "pool_version": resp.pool_version})
                    self._kick.set()
            except grpc.RpcError as e:
                if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                    log.warning("cannot watch the pool", extra={
                        "node": self.node, "group": self.cfg.group, "detail": e.details()})
                    self._stop.wait(1.0)
            if self._stop.is_set():
                return
            self._stop.wait(0.1)

    def pool(self) -> pool_pb2.WatchPoolResponse | None:
        with self._lock:
            return self._latest

    # -- reconcile -------------------------------------------------------------------------

    def _reconciler(self) -> None:
        while not self._stop.is_set():
            self._kick.wait(self.cfg.reconcile_interval)
            self._kick.clear()
            if self._stop.is_set():
                return
            try:
                self.reconcile()
            except Exception:
                log.exception("lb reconcile failed; retrying", extra={"node": self.node})

    def reconcile(self) -> bool:
        """One pass; True if HAProxy now reflects the latest pool (and it was reported)."""
        snap = self.pool()
        if snap is None:
            return False
        self.reconciles += 1
        want = {m.member: m.in_service for m in snap.members}
        try:
            servers = self.admin.servers_state(self.cfg.backend)
            changes, missing = plan(want, servers, self.cfg.servers, self.cfg.excluded_state)
            for ch in changes:
                self.admin.set_state(self.cfg.backend, ch.server, ch.state)
                log.info("haproxy server state set", extra={"event": {
                    "kind": "lb_server_state", "node": self.node, "group": self.cfg.group,
                    "member": ch.member, "server": f"{self.cfg.backend}/{ch.server}",
                    "state": ch.state, "pool_version": snap.pool_version, "reason": ch.why,
                    "drift": self.applied_version >= snap.pool_version}})
            if changes:
                servers = self.admin.servers_state(self.cfg.backend)
                left, missing = plan(want, servers, self.cfg.servers, self.cfg.excluded_state)
                if left:
                    log.warning("haproxy did not take every change; will retry", extra={
                        "node": self.node, "pending": [f"{c.server}:{c.state}" for c in left]})
                    return False
        except HaproxyError as e:
            if self._haproxy_ok is not False:
                log.warning("haproxy unreachable or refusing; will retry", extra={
                    "node": self.node, "backend": self.cfg.backend, "error": str(e)})
            self._haproxy_ok = False
            return False
        if self._haproxy_ok is not True:
            log.info("haproxy in step with the pool", extra={"event": {
                "kind": "lb_in_step", "node": self.node, "group": self.cfg.group,
                "backend": self.cfg.backend, "pool_version": snap.pool_version}})
        self._haproxy_ok = True
        if missing:
            log.warning("pool members without an haproxy server", extra={
                "node": self.node, "backend": self.cfg.backend, "members": missing})
        self.applied_version = max(self.applied_version, snap.pool_version)
        self._report(snap, servers)
        return True

    def _health(self, snap: pool_pb2.WatchPoolResponse,
                servers: dict[str, ServerState]) -> dict[str, tuple[bool, str]]:
        """Member -> (HAProxy's checks say up, detail); only for servers it checks."""
        if self.cfg.health_source != "haproxy":
            return {}
        out = {}
        for m in snap.members:
            st = servers.get(self.cfg.servers.get(m.member, m.member))
            if st is None or st.forced_maint:
                continue  # unknown, or not checked while in maintenance
            out[m.member] = (st.up, st.describe())
        return out

    def _report(self, snap: pool_pb2.WatchPoolResponse,
                servers: dict[str, ServerState]) -> None:
        health = self._health(snap, servers)
        version = self.applied_version
        req = pool_pb2.ReportPoolAppliedRequest(
            group=self.cfg.group, node=self.node, pool_version=version,
            servers=[pool_pb2.ServerHealth(
                member=m, detail=d,
                health=types_pb2.HEALTH_HEALTHY if up else types_pb2.HEALTH_UNHEALTHY)
                for m, (up, d) in sorted(health.items())])
        periodic = bool(health)  # health reports must stay fresh on every coordinator
        changed = health != self._last_health
        self._last_health = health
        for i, stub in enumerate(self._stubs):
            if periodic or changed or self.reported.get(i, 0) < version:
                self._senders.submit(self._send, i, stub, req, version)

    def _send(self, i: int, stub: pool_pb2_grpc.PoolServiceStub,
              req: pool_pb2.ReportPoolAppliedRequest, version: int) -> None:
        try:
            stub.ReportPoolApplied(req, timeout=1.0)
        except grpc.RpcError as e:
            log.debug("pool report not delivered", extra={
                "node": self.node, "coordinator": self.endpoints[i], "code": str(e.code()),
                "detail": e.details()})
            return
        with self._lock:
            self.reported[i] = max(self.reported.get(i, 0), version)
