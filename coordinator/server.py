"""`vnfha coordinator`: wire config, store, lease table, controller and gRPC together."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from vnfha.coordinator import commands as C
from vnfha.coordinator import overload
from vnfha.coordinator.config import CoordinatorConfig, parse_address
from vnfha.coordinator.control import Controller
from vnfha.coordinator.decide import Policy
from vnfha.coordinator.fastpath import FastPathIntake
from vnfha.coordinator.gcfreeze import GcFreezer
from vnfha.coordinator.lbhealth import LbHealthTable
from vnfha.coordinator.leases import FIRST_KEEPALIVE_GRACE, LeaseTable
from vnfha.coordinator.logs import setup_logging
from vnfha.coordinator.recovery import RecoveryRunner
from vnfha.coordinator.security.authz import AioAuthorizer
from vnfha.coordinator.security.tls import ReloadingServerCredentials
from vnfha.coordinator.service.admin import AdminServicer
from vnfha.coordinator.service.agent import AgentServicer
from vnfha.coordinator.service.feed import ChangeFeed, OnlyRoleChanges
from vnfha.coordinator.service.peer import CoordinatorPeerClient, PeerServicer
from vnfha.coordinator.service.pool import PoolServicer
from vnfha.coordinator.service.state import StateServicer
from vnfha.coordinator.store.base import Store, StoreError
from vnfha.coordinator.store.memory import MemoryStore
from vnfha.v1 import (
    admin_pb2_grpc,
    agent_pb2_grpc,
    peer_pb2_grpc,
    pool_pb2_grpc,
    state_pb2_grpc,
)

log = logging.getLogger("vnfha.server")

# gRPC runs on asyncio (one event loop thread: streams cost no thread each);
# blocking store calls go to this many worker threads.
BLOCKING_WORKERS = 64
HEALTH_INTERVAL = 0.1  # seconds between health re-evaluations
#: health rounds between two sweeps of the lease table for removed nodes (~10 s)
FORGET_EVERY = 100
SERVICES = ("vnfha.v1.AgentService", "vnfha.v1.AdminService", "vnfha.v1.PeerService",
            "vnfha.v1.StateService", "vnfha.v1.PoolService")


def build_store(cfg: CoordinatorConfig) -> Store:
    if cfg.store.backend == "memory":
        return MemoryStore(node_id=cfg.node_id)
    if cfg.store.backend == "etcd":
        from vnfha.coordinator.store.etcd import EtcdStore

        assert cfg.store.etcd is not None
        return EtcdStore(cfg.node_id, cfg.store.etcd)
    from vnfha.coordinator.raft.settings import RaftSettings
    from vnfha.coordinator.store.raft import RaftStore

    me = cfg.self_member
    assert me.raft is not None
    settings = RaftSettings(
        self_address=me.raft,
        peers=tuple(p.raft for p in cfg.peers if p.raft is not None),
        data_dir=cfg.raft_dir,
        secret=cfg.cluster.secret,
        previous_secret=cfg.cluster.previous_secret,
        election_timeout_min=cfg.raft.election_timeout_min,
        election_timeout_max=cfg.raft.election_timeout_max,
        heartbeat_interval=cfg.raft.heartbeat_interval,
        compaction_min_entries=cfg.raft.compaction_min_entries,
        disk_fatal_after=cfg.raft.disk_fatal_after,
    )
    ids = {m.raft: m.id for m in cfg.cluster.members if m.raft is not None}
    return RaftStore(cfg.node_id, settings, ids)


@dataclass
class Coordinator:
    """A running coordinator; `start` returns once it serves gRPC."""

    cfg: CoordinatorConfig
    store: Store = field(init=False)
    leases: LeaseTable = field(init=False)
    controller: Controller = field(init=False)
    server: grpc.aio.Server = field(init=False)
    agent_api: AgentServicer = field(init=False)
    state_api: StateServicer = field(init=False)
    #: the UDP keepalive intake (None: fastpath.enabled is false)
    fastpath: FastPathIntake | None = None
    #: /readyz and vnfha_coordinator_ready: None means coordinator/metrics.ready (store
    #: reachable, Raft majority in contact, leader known); set it to share the gRPC
    #: health service's rules.
    readiness: Callable[[], tuple[bool, str]] | None = None
    _peers: list[CoordinatorPeerClient] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _loop: asyncio.AbstractEventLoop = field(init=False)
    _loop_thread: threading.Thread = field(init=False)
    #: why gRPC health says NOT_SERVING (None while SERVING); see _health_loop
    not_ready: str | None = None
    #: set once the store's disk failed for good; run() then exits with it
    fatal: str | None = None
    fatal_event: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        cfg = self.cfg
        # The event loop's own lateness: not counted as anyone's silence (overload.py).
        self.overload = overload.for_ttl(cfg.leases.ttl)
        self.leases = LeaseTable(started_at=time.monotonic(), ttl=cfg.leases.ttl,
                                 known_nodes=lambda: self.store.state().nodes,
                                 stall=self.overload.stalled,
                                 first_keepalive_grace=FIRST_KEEPALIVE_GRACE)
        self.store = build_store(cfg)
        self.store.set_fatal_handler(self._on_fatal)
        # A starved cluster keeps electing a leader (store/base.py pace_for_overload).
        meter = self.overload
        self.store.pace_for_overload(lambda: meter.overloaded(time.monotonic()))
        self.store.start()
        self._wait_caught_up()
        policy = Policy(ttl=cfg.leases.ttl, stabilization=cfg.leases.stabilization,
                        recover_without_lb=cfg.recovery.without_lb)
        peer_fns = {}
        for p in cfg.peers:
            client = CoordinatorPeerClient(p.api, cfg.tls)
            self._peers.append(client)
            peer_fns[p.id] = client.lease_ages
        self.lb_health = LbHealthTable()
        self.controller = Controller(self.store, self.leases, policy,
                                     interval=cfg.policy.decide_interval, peers=peer_fns,
                                     quorum=cfg.quorum, lb_health=self.lb_health,
                                     overloaded=self.overload.overloaded)
        # Checkpoint/queue writes do not wake the decide loop (service/feed.py).
        self.store.add_listener(OnlyRoleChanges(self.store.state, self.controller.wake))
        self.recovery: RecoveryRunner | None = None
        if cfg.recovery.enabled:  # the leader asks the VNF manager to heal (recovery.py)
            self.recovery = RecoveryRunner(self.store, cfg.recovery)
            self.store.add_listener(OnlyRoleChanges(self.store.state, self.recovery.wake))
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(ThreadPoolExecutor(BLOCKING_WORKERS,
                                                           thread_name_prefix="blocking"))
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="grpc-loop",
                                             daemon=True)
        self._loop_thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        except BaseException:
            self._stop_loop()
            if self.fastpath is not None:
                self.fastpath.stop()
            self.store.stop()
            raise
        self.controller.start()
        if self.recovery is not None:
            self.recovery.start()
        self.metrics_http: Any = None
        if cfg.metrics.listen is not None:  # /metrics, /livez, /readyz (coordinator/metrics.py)
            from vnfha.coordinator.metrics import serve_coordinator

            try:
                self.metrics_http = serve_coordinator(self)
            except OSError:
                self.stop()
                raise
        if cfg.groups:
            threading.Thread(target=self._apply_declared_groups, name="apply-groups",
                             daemon=True).start()
        log.info("coordinator serving", extra={"node": cfg.node_id, "api": cfg.self_member.api,
                                               "backend": cfg.store.backend,
                                               "members": len(cfg.cluster.members)})

    def _wait_caught_up(self) -> None:
        """Serve reads only once the restored state is applied, if a leader shows up in
        time; a coordinator without a quorum still starts (status says no leader)."""
        limit = 3 * self.cfg.raft.election_timeout_max + 1.0
        if self.cfg.store.etcd is not None:  # a new leader needs the old session to expire
            limit = self.cfg.store.etcd.session_ttl + 1.0
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.store.caught_up():
                return
            time.sleep(0.02)
        log.warning("starting without a leader: state may be stale until one is elected",
                    extra={"node": self.cfg.node_id, "waited_s": limit})

    async def _serve(self) -> None:
        cfg = self.cfg
        feed = ChangeFeed(asyncio.get_running_loop())
        self.store.add_listener(OnlyRoleChanges(self.store.state, feed.notify_threadsafe))
        endpoints = {m.id: m.api for m in cfg.cluster.members}
        self.authorizer = AioAuthorizer(tls=cfg.tls is not None, state=self.store.state)
        self.server = grpc.aio.server(options=[("grpc.so_reuseport", 0)],
                                      interceptors=[self.authorizer])
        self.agent_api = AgentServicer(self.store, self.leases, cfg.node_id, cfg.leases.ttl,
                                       on_report_change=self.controller.wake, feed=feed,
                                       cluster_members=tuple(endpoints),
                                       overload=self.overload.reason)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self.agent_api, self.server)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(self.store, self.leases, cfg.node_id, endpoints,
                          on_change=self.controller.wake, feed=feed), self.server)
        pool_pb2_grpc.add_PoolServiceServicer_to_server(
            PoolServicer(self.store, feed, self.lb_health, on_change=self.controller.wake),
            self.server)
        peer_pb2_grpc.add_PeerServiceServicer_to_server(
            PeerServicer(self.leases, cfg.node_id, overloaded=self.overload.overloaded),
            self.server)
        self.state_api = StateServicer(self.store, cfg.state, feed, cfg.node_id)
        state_pb2_grpc.add_StateServiceServicer_to_server(self.state_api, self.server)
        health_api = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_api, self.server)
        if cfg.tls is not None:
            self.server_tls = ReloadingServerCredentials(cfg.tls, serves_as="coordinator")
            port = self.server.add_secure_port(cfg.self_member.api,
                                               self.server_tls.credentials())
        else:
            log.warning("gRPC API without TLS: every caller is trusted as identity "
                        "'insecure' (no authentication, no authorization)",
                        extra={"node": cfg.node_id, "api": cfg.self_member.api,
                               "members": len(cfg.cluster.members),
                               "insecure": cfg.insecure})
            port = self.server.add_insecure_port(cfg.self_member.api)
        if port == 0:
            raise OSError(f"cannot listen on {cfg.self_member.api}")
        if cfg.admin_socket is not None:
            cfg.admin_socket.parent.mkdir(parents=True, exist_ok=True)
            cfg.admin_socket.unlink(missing_ok=True)  # a stale socket from a previous run
            # grpc binds *and listens* here: made under umask 177 the socket is 0600 from
            # its first moment, so no one connects (as root-equivalent `local`) before the
            # chmod below, whatever umask the service runs with.
            umask = os.umask(0o177)
            try:
                added = self.server.add_insecure_port(f"unix://{cfg.admin_socket}")
            finally:
                os.umask(umask)
            if added == 0:
                raise OSError(f"cannot listen on unix socket {cfg.admin_socket}")
        await self.server.start()
        if cfg.fastpath.enabled:
            self.agent_api.fastpath = self._start_fastpath()
        if cfg.admin_socket is not None:  # local root only: it is served without TLS
            cfg.admin_socket.chmod(0o600)
        await self._set_health(health_api, self.store.not_ready_reason())
        self._health_task = asyncio.ensure_future(self._health_loop(health_api))
        self._overload_task = asyncio.ensure_future(overload.watch(self.overload, cfg.node_id))
        self.leases.serving_from(time.monotonic())

    def _start_fastpath(self) -> FastPathIntake:
        """The UDP keepalive intake on the API's host (coordinator/fastpath.py)."""
        host, api_port = parse_address(self.cfg.self_member.api)
        port = api_port if self.cfg.fastpath.port is None else self.cfg.fastpath.port
        # Overloaded, a datagram read more than TTL/2 after it arrived is dropped
        # unanswered (an active's: more than a TTL, when no answer could help its lease):
        # the agent's newer rounds wait behind it; a standby is answered at
        # most every overload.ration, and so is an active once its datagrams are read
        # later than the overload threshold (fastpath._handle_batch).
        intake = FastPathIntake(host, port, self.agent_api.handle_datagram,
                                stale_after=self.cfg.leases.ttl / 2,
                                ration=overload.ration(self.cfg.leases.ttl),
                                actives_within=self.overload.threshold,
                                actives_stale_after=self.cfg.leases.ttl)
        intake.on_queued = self.overload.queued  # a backlog in its socket is overload too
        intake.holds_active = self.agent_api.holds_active  # actives answered first
        intake.overloaded = self.overload.overloaded  # stale ones dropped only then
        intake.lagging = self.overload.lagging  # and actives rationed only while behind
        # Fast-path silences count up to what the intake has read (leases.py).
        self.leases.read_through(lambda: intake.read_through, intake.shed_marks)
        intake.start()
        self.fastpath = intake
        log.info("keepalive fast path listening", extra={
            "node": self.cfg.node_id, "udp": f"{host}:{intake.port}",
            "keys_over_tls": self.cfg.tls is not None})
        return intake

    async def _set_health(self, health_api: health_aio.HealthServicer,
                          reason: str | None) -> None:
        self.not_ready = reason
        status = (health_pb2.HealthCheckResponse.SERVING if reason is None
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", *SERVICES):
            await health_api.set(name, status)

    async def _health_loop(self, health_api: health_aio.HealthServicer) -> None:
        """Health tells the truth: NOT_SERVING while the store cannot persist, has no
        leader (no quorum) or is unreachable, or reads are gated after a restart
        (Store.not_ready_reason); SERVING again when that clears. One log line per
        change, not per check."""
        rounds = 0
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            rounds += 1
            if rounds % FORGET_EVERY == 0:
                self._forget_removed_nodes()
            try:
                reason = self.store.not_ready_reason()
            except Exception as e:  # a store bug must not stop health reporting
                reason = f"store health check failed: {type(e).__name__}"
            reason = reason or self.overload.reason(time.monotonic())
            if reason != self.not_ready:
                log.warning("health changed", extra={
                    "node": self.cfg.node_id,
                    "serving": reason is None, "reason": reason or ""})
                await self._set_health(health_api, reason)

    def _forget_removed_nodes(self) -> None:
        """Drop the lease records and fast-path keys of nodes no longer registered
        (`vnfha node remove`): memory that would grow with VM churn, the grace a node
        registered again under the same name should get (leases.LeaseTable.forget_absent),
        and a removed node's key, which must not keep authenticating its datagrams
        (fastpath.FastPathIntake.forget_absent)."""
        try:
            if self.store.read_gate() is not None:
                return  # catching up: its state may not hold every node yet
            nodes = self.store.state().nodes
            gone = self.leases.forget_absent(nodes)
            keys = self.fastpath.forget_absent(nodes) if self.fastpath is not None else []
        except Exception as e:  # a store that cannot answer now: the next sweep retries
            log.debug("lease records not swept", extra={"error": str(e)})
            return
        if gone or keys:
            log.info("lease records of removed nodes dropped", extra={
                "node": self.cfg.node_id, "count": len(gone), "nodes": gone[:5],
                "fast_path_keys": len(keys)})

    def _on_fatal(self, line: str) -> None:
        """The store's disk failed for good (called from the store's thread)."""
        self.fatal = line
        self.fatal_event.set()

    def _stop_loop(self) -> None:
        try:  # what the server left running ends now, not as a "destroyed but pending"
            asyncio.run_coroutine_threadsafe(_end_tasks(), self._loop).result(timeout=2)
        except Exception:  # the loop may already be gone; nothing else to release there
            log.debug("event loop tasks not all ended", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(timeout=5)
        self._loop.close()

    def _apply_declared_groups(self) -> None:
        """Groups from the config file seed the cluster: created if absent, never changed
        once they exist (docs/config.md `groups`); retried until a leader takes them."""
        cmd = C.apply_groups(self.cfg.groups_as_specs(), seed_only=True)
        while not self._stop.is_set():
            try:
                result = self.store.submit(cmd, timeout=2.0)
            except StoreError as e:
                log.debug("declared groups not applied yet", extra={"error": str(e)})
                self._stop.wait(0.2)
                continue
            if result.get("ok"):
                kept = result.get("kept") or []
                log.info("declared groups seeded",
                         extra={"groups": [g.name for g in self.cfg.groups]})
                if kept:
                    log.warning("config file differs from the cluster's groups; the cluster's "
                                "definition is kept (change groups with `vnfha group apply`)",
                                extra={"groups": kept})
            else:
                log.error("declared groups refused", extra={"error": result.get("error"),
                                                            "detail": result.get("message")})
            return

    def stop(self) -> None:
        self._stop.set()
        for name in ("_health_task", "_overload_task"):
            task = getattr(self, name, None)
            if task is not None:
                self._loop.call_soon_threadsafe(task.cancel)
        if getattr(self, "metrics_http", None) is not None:
            self.metrics_http.stop()
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(grace=0.5),
                                             self._loop).result(timeout=3)
        except Exception:  # the loop may already be gone; nothing else to release there
            log.debug("grpc server stop did not complete cleanly", exc_info=True)
        self._stop_loop()
        if self.fastpath is not None:
            self.fastpath.stop()
        self.controller.stop()
        if self.recovery is not None:
            self.recovery.stop()
        for p in self._peers:
            p.close()
        self.store.stop()
        log.info("coordinator stopped", extra={"node": self.cfg.node_id})


async def _end_tasks(timeout: float = 1.0) -> None:
    """Cancel every other task on this loop and wait (bounded) for them to end. Why: after
    `server.stop` the gRPC server's per-call tasks (a Keepalive stream cut mid-read) can
    still be pending; a loop closed under them leaves them to the garbage collector,
    which prints "Task was destroyed but it is pending!" and their tracebacks to stderr
    at some later moment, in whatever runs then (a CI test reading stderr failed on it)."""
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for t in rest:
        t.cancel()
    if rest:
        await asyncio.wait(rest, timeout=timeout)


def run(cfg: CoordinatorConfig) -> int:
    setup_logging(cfg.logging.level, cfg.logging.format)
    from vnfha.agents import realtime  # the agent's set-up, shared (docs/config.md)

    # Before any thread exists: the Raft, gRPC and decide threads inherit the scheduler.
    try:
        rt = realtime.apply(realtime.RealtimeSettings(cfg.realtime.mode,
                                                      cfg.realtime.priority),
                            threads_inherit=True)
    except RuntimeError as e:
        log.error("cannot start", extra={"node": cfg.node_id, "error": str(e)})
        return 1
    if rt.problems:
        log.warning("running without part of the real-time set-up (realtime: auto)",
                    extra={"node": cfg.node_id, "problems": list(rt.problems)})
    coordinator = Coordinator(cfg)
    try:
        coordinator.start()
    except OSError as e:
        log.error("cannot start", extra={"error": str(e)})
        return 1
    freezer = None
    if cfg.realtime.mode != "off":
        realtime.freeze_garbage()  # start-up objects out of every later collection
        freezer = GcFreezer()  # and what registering nodes add, as it comes (gcfreeze.py)
        freezer.start()
    log.info("real-time set-up", extra={"node": cfg.node_id, "realtime": rt.scheduler,
                                        "memory_locked": rt.mlock})
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping on signal", extra={"signal": signal.Signals(signum).name})
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not done.is_set() and not coordinator.fatal_event.is_set():
        done.wait(0.2)
    if coordinator.fatal is not None:
        log.error("exiting: the raft data dir failed", extra={"reason": coordinator.fatal})
    if freezer is not None:
        freezer.stop()
    coordinator.stop()
    return 0 if coordinator.fatal is None else 1
