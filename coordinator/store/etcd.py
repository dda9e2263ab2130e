"""The etcd store: the shared state machine, with etcd as the durable, ordered log.

A command is applied as a compare-and-set transaction: take the state as last
read (the cluster key at mod revision R), apply the command locally with the
shared `StateMachine`, then ``txn(cluster mod_revision == R [, leader key created
at our election], put/delete the changed keys)``: the cluster record and only the
groups, nodes and other keys the command changed. A lost race re-reads and
tries again; a request id already recorded returns its recorded result. Every
coordinator reads the prefix once and follows it with one etcd watch; a lost watch
is resumed from the last revision it delivered, and everything is read again only
when etcd has compacted that history. Key layout: etcd_layout.py.

Leadership: each coordinator keeps a session lease; the leader is whoever
created ``<prefix>/leader`` (only if absent) on its lease. `is_leader` turns
False `LEASE_MARGIN` before the lease can expire on etcd's side (the TTL counts
from when our last keepalive was *sent*), so no other coordinator can be
elected while this one still believes it leads; and every write the leader
makes also compares the leader key's create revision, so a deposed leader's
decision is refused by etcd itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from vnfha.coordinator.commands import Command, InvalidCommand, validate_command
from vnfha.coordinator.model import ClusterState
from vnfha.coordinator.state_machine import RID_REUSED, StateMachine, refused
from vnfha.coordinator.store.base import (
    Guarantees,
    OutcomeUnknown,
    Result,
    Store,
    StoreUnavailable,
)
from vnfha.coordinator.store.etcd_access import EtcdAccessError, check_access, explain
from vnfha.coordinator.store.etcd_client import (
    EtcdClient,
    EtcdRpcError,
    WatchStream,
    create_revision_is,
    delete_op,
    mod_revision_is,
    put_op,
    range_op,
)
from vnfha.coordinator.store.etcd_config import EtcdSettings
from vnfha.coordinator.store.etcd_layout import (
    Keys,
    Mirror,
    conversion_chunks,
    encode,
    evictions,
    write_ops,
)

log = logging.getLogger("vnfha.etcd")

#: is_leader() ends this long (plus DRIFT of the TTL) before our lease can expire in etcd
LEASE_MARGIN = 0.2
DRIFT = 0.02
#: seconds start() waits for etcd (access check, then the first full read) before serving
START_WAIT = 2.0
#: gRPC codes that mean etcd refused the request outright: it was not applied
_DEFINITE = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
             grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
             grpc.StatusCode.RESOURCE_EXHAUSTED)


def lease_valid_until(sent_at: float, granted_ttl: float) -> float:
    """Until when this node may trust a lease renewed by a keepalive sent at `sent_at`:
    etcd restarts the TTL when it *receives* the keepalive, which is after we sent it."""
    return sent_at + granted_ttl * (1 - DRIFT) - LEASE_MARGIN


class EtcdStore(Store):
    # etcd keeps the state and decides commits; a leader's writes compare the leader
    # key in the same transaction; reads wait for the first read from etcd.
    guarantees = Guarantees(durable=True, fenced_leader_writes=True, external_quorum=True,
                            monotonic_reads_after_restart=True, shared=True)

    def __init__(self, node_id: str, settings: EtcdSettings,
                 clock: Callable[[], float] = time.monotonic,
                 client_factory: Callable[[EtcdSettings], EtcdClient] = EtcdClient) -> None:
        super().__init__()
        self._node_id = node_id
        self._settings = settings
        self._keys = Keys(settings.prefix)
        self._clock = clock
        self._client_factory = client_factory
        self._lock = threading.Lock()  # mirror and session fields
        self._progress = threading.Condition(self._lock)  # the mirror moved on
        self._write_lock = threading.Lock()  # one local submit at a time (no self-races)
        self._mirror = Mirror(self._keys)
        self._client: EtcdClient | None = None
        self._running = False
        self._synced = False  # the mirror is current and a watch etcd confirmed follows it
        self._ever_synced = False  # read_gate: before the first full read the mirror is empty
        self._watch: WatchStream | None = None
        #: every change under the prefix up to this revision reached the mirror (a full
        #: read, or watch events): a watch resumes after it
        self._delivered = 0
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        # session
        self._lease = 0
        self._granted_ttl = float(settings.session_ttl)
        self._valid_until = 0.0
        self._last_ok: float | None = None  # send time of the last successful round trip
        self._leader_rev = 0  # create revision of the leader key we hold; 0 = not leading
        self._since: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start following etcd; raises EtcdAccessError (and starts nothing) if etcd
        refuses our credentials or TLS, which no amount of waiting fixes."""
        self._client = self._client_factory(self._settings)
        started = self._clock()
        try:
            if not check_access(self._client, self._settings, self._keys, START_WAIT):
                log.warning("etcd not reachable at start; serving without state until it is",
                            extra={"node": self._node_id,
                                   "endpoints": ",".join(self._settings.endpoints)})
        except EtcdAccessError as e:
            log.error("etcd refused this coordinator", extra={"node": self._node_id,
                                                               "error": str(e)})
            self._client.close()
            self._client = None
            raise
        self._running = True
        for target, name in ((self._session_loop, "etcd-session"),
                             (self._watch_loop, "etcd-watch")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        # Serve once the state is read, if etcd answers in time; otherwise start anyway
        # (status says so) and catch up in the background.
        with self._progress:
            self._progress.wait_for(lambda: self._synced,
                                    timeout=max(0.0, started + START_WAIT - self._clock()))
            convert = self._synced and self._mirror.layout == 1
        if convert:  # an upgrade: convert now rather than on the first write
            with self._write_lock:
                try:
                    self._convert(self._clock() + 10.0)
                except StoreUnavailable as e:
                    log.warning("etcd layout conversion failed; the first write retries it",
                                extra={"node": self._node_id, "error": str(e)})

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._wake.set()
            with self._lock:
                watch, self._watch = self._watch, None
                lease, self._lease = self._lease, 0
                self._leader_rev = 0
                self._since = None
                self._progress.notify_all()
            if watch is not None:
                watch.cancel()
            client = self._client
            if client is not None and lease:
                try:  # hand over at once: the leader key goes with the lease
                    client.revoke(lease, timeout=0.5)
                except EtcdRpcError as e:
                    log.info("could not revoke session lease; it will expire",
                             extra={"node": self._node_id, "error": str(e)})
            for t in self._threads:
                t.join(timeout=5)
            self._threads = []
            if client is not None:
                client.close()
        self._notify()

    # -- reads -------------------------------------------------------------------------------

    def state(self) -> ClusterState:
        with self._lock:
            return self._mirror.state

    def is_leader(self) -> bool:
        with self._lock:
            return self._leading_locked()

    def _leading_locked(self) -> bool:
        return self._running and self._leader_rev != 0 and self._clock() < self._valid_until

    def leader_since(self) -> float | None:
        with self._lock:
            return self._since if self._leading_locked() else None

    def quorum_contact(self) -> float | None:
        with self._lock:
            return self._last_ok if self._leading_locked() else None

    def leader_id(self) -> str | None:
        with self._lock:
            if not self._running:
                return None
            if self._leading_locked():
                return self._node_id
            return self._mirror.leader.node if self._mirror.leader is not None else None

    def caught_up(self) -> bool:
        with self._lock:
            return (self._running and self._synced and self._reachable_locked()
                    and self._mirror.leader is not None)

    def store_reachable(self) -> bool:
        with self._lock:
            return self._running and self._reachable_locked()

    def read_gate(self) -> str | None:
        """A coordinator started while etcd was unreachable has an empty mirror: it
        must not serve that as the state (older than anything it served before)."""
        with self._lock:
            if self._ever_synced:
                return None  # later re-reads only move the mirror forward
        return "catching up: the state has not been read from etcd yet"

    def _reachable_locked(self) -> bool:
        return self._last_ok is not None and self._clock() - self._last_ok < self._granted_ttl

    def describe(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                "backend": "etcd", "node": self._node_id,
                "endpoints": ",".join(self._settings.endpoints),
                "prefix": self._settings.prefix, "revision": self._mirror.state.revision,
                "etcd_revision": self._mirror.revision, "synced": self._synced,
                "reachable": self._running and self._reachable_locked(),
                "session_lease": f"{self._lease:x}", "session_ttl": self._granted_ttl,
                "leader": self._mirror.leader.node if self._mirror.leader else "",
            }
            if self._mirror.unreadable:
                out["unreadable_keys"] = "; ".join(self._mirror.unreadable[:5])
        out["checked_at"] = round(time.time(), 3)
        return out

    # -- writes ------------------------------------------------------------------------------

    def submit(self, command: Command, timeout: float = 2.0) -> Result:
        return self._submit(command, timeout, fenced=False)

    def submit_as_leader(self, command: Command, timeout: float = 2.0) -> Result:
        return self._submit(command, timeout, fenced=True)

    def _submit(self, command: Command, timeout: float, fenced: bool) -> Result:
        if not self._running or self._client is None:
            raise StoreUnavailable("etcd store is not running")
        try:
            validate_command(command)  # refuse garbage before it reaches etcd
        except InvalidCommand as e:
            return refused("invalid", str(e))
        deadline = self._clock() + timeout
        if not self._write_lock.acquire(timeout=timeout):
            raise StoreUnavailable("timed out waiting for this coordinator's other writes")
        try:
            attempt = 0
            while True:
                attempt += 1
                outcome = self._attempt(command, deadline, fenced)
                if outcome is not None:
                    return outcome
                if self._clock() >= deadline or not self._running:
                    raise StoreUnavailable(f"lost {attempt} races for the cluster key in "
                                           f"{timeout:.3g} s; nothing was applied")
        finally:
            self._write_lock.release()

    def _attempt(self, command: Command, deadline: float, fenced: bool) -> Result | None:
        """One read-apply-CAS round: the result, or None after a lost race (re-read)."""
        assert self._client is not None
        rid = command["rid"]
        with self._lock:
            if not self._synced:
                self._progress.wait_for(lambda: self._synced or not self._running,
                                        timeout=max(0.0, deadline - self._clock()))
            if not self._synced:
                raise StoreUnavailable("etcd is not reachable from this coordinator "
                                       "(state not read yet)")
            m = self._mirror
            if m.too_new:
                raise StoreUnavailable(f"the keys under {self._keys.prefix}/ were written by "
                                       "a newer vnfha (etcd layout); upgrade this coordinator")
            convert = m.layout == 1
            before = m.state
            base = m.cluster_revision
            create = m.cluster is None
            state_rev = m.state_revision
            recorded = m.rids.get(rid)
            evict = evictions(m.rids) if recorded is None else ()
            leader_rev = self._leader_rev if self._leading_locked() else 0
        if convert:
            self._convert(deadline)
            return None  # apply to the converted state
        if fenced and leader_rev == 0:
            raise StoreUnavailable(f"{self._node_id} does not lead; a leader's decision "
                                   "is not applied")
        sm = StateMachine()
        sm.restore({"state": {}, "recent": [(rid, recorded)] if recorded is not None else []})
        sm.state = before
        result = sm.apply(command)
        if result.get("duplicate") or result.get("error") == RID_REUSED:
            return result  # nothing to write: answered from (or refused by) the record
        record = sm.record(rid)  # the result with its command's digest, as remembered
        ops = write_ops(self._keys, before, sm.state, rid, record, evict, create=create)
        compare = [mod_revision_is(self._keys.cluster, base)]
        if create:  # a new prefix: nothing may have appeared at the old state key either
            compare.append(mod_revision_is(self._keys.state, state_rev))
        if leader_rev:
            compare.append(create_revision_is(self._keys.leader, leader_rev))
        success = [put_op(k, v) for k, v in ops.puts.items()]
        success += [delete_op(k) for k in ops.deletes]
        sent = self._clock()
        try:
            resp = self._client.txn(compare, success,
                                    [range_op(self._keys.cluster), range_op(self._keys.leader),
                                     range_op(self._keys.state)],
                                    timeout=max(0.05, deadline - sent))
        except EtcdRpcError as e:
            if e.code in _DEFINITE:
                hint = explain(self._settings, e)
                raise StoreUnavailable(str(e) if hint is None else f"{e}: {hint}") from e
            raise OutcomeUnknown(f"{e} (request id {rid})") from e
        self._round_trip_ok(sent)
        if resp.succeeded:
            with self._lock:
                self._mirror.adopt(resp.header.revision, ops, sm.state, rid, record, evict)
                self._progress.notify_all()
            self._notify()
            return result
        # Lost: the state moved on, or our leadership did.
        cluster_kvs = resp.responses[0].response_range.kvs
        leader_kvs = resp.responses[1].response_range.kvs
        state_kvs = resp.responses[2].response_range.kvs
        now_leader_rev = leader_kvs[0].create_revision if leader_kvs else 0
        if leader_rev and now_leader_rev != leader_rev:
            self._lost_leadership("the leader key is no longer ours")
            if fenced:
                raise StoreUnavailable(f"{self._node_id} no longer leads; decision not applied")
        seen = max([kv.mod_revision for kv in (*cluster_kvs, *state_kvs)], default=0)
        self._catch_up(seen, deadline)
        return None

    def _catch_up(self, revision: int, deadline: float) -> None:
        """Wait for the watch to bring the mirror to `revision`; re-read if slow."""
        with self._progress:
            self._progress.wait_for(
                lambda: self._mirror.revision >= revision or not self._running,
                timeout=max(0.0, min(0.5, deadline - self._clock())))
            if self._mirror.revision >= revision:
                return
        try:
            self._resync()
        except EtcdRpcError as e:
            log.debug("re-read after a lost race failed", extra={"error": str(e)})

    def _convert(self, deadline: float) -> None:
        """Rewrite a layout-1 prefix (one state key) as one key per group and node
        (etcd_layout.conversion_chunks), then re-read it. Every transaction compares
        the old state key's mod revision, so a write by anyone else in between makes
        the rest fail and the next attempt starts over from what is there then; a
        repeated or concurrent conversion writes the same values."""
        assert self._client is not None
        with self._lock:
            if self._mirror.layout != 1:
                return
            chunks = conversion_chunks(self._keys, self._mirror)
            legacy_rev = self._mirror.state_revision
            groups = len(self._mirror.state.groups)
        compare = [mod_revision_is(self._keys.state, legacy_rev),
                   create_revision_is(self._keys.cluster, 0)]
        for ops in chunks:
            success = [put_op(k, v) for k, v in ops.puts.items()]
            success += [delete_op(k) for k in ops.deletes]
            sent = self._clock()
            try:
                resp = self._client.txn(compare, success, [],
                                        timeout=max(0.5, deadline - sent))
            except EtcdRpcError as e:
                raise StoreUnavailable(f"converting the etcd layout under "
                                       f"{self._keys.prefix}/: {e}") from e
            self._round_trip_ok(sent)
            if not resp.succeeded:
                log.info("etcd layout conversion met another write; re-reading",
                         extra={"node": self._node_id})
                break
        else:
            log.info("converted the etcd keys to one key per group and node",
                     extra={"node": self._node_id, "prefix": self._keys.prefix,
                            "groups": groups, "transactions": len(chunks)})
        try:
            self._resync()
        except EtcdRpcError as e:
            log.debug("re-read after the layout conversion failed", extra={"error": str(e)})

    # -- session: lease, reachability, election ------------------------------------------------

    def _round_trip_ok(self, sent: float) -> None:
        with self._lock:
            if self._last_ok is None or sent > self._last_ok:
                self._last_ok = sent

    def _lost_leadership(self, why: str) -> None:
        with self._lock:
            was = self._leader_rev
            self._leader_rev = 0
            self._since = None
        if was:
            log.warning("lost leadership", extra={"node": self._node_id, "reason": why})
            self._notify()
            self._wake.set()

    def _session_loop(self) -> None:
        interval = max(0.1, self._settings.session_ttl / 3)
        failing = False
        while self._running:
            try:
                self._session_round()
                if failing:
                    log.info("etcd reachable again", extra={"node": self._node_id})
                failing = False
            except EtcdRpcError as e:
                if not failing:
                    extra = {"node": self._node_id, "error": str(e),
                             "session_ttl": self._granted_ttl}
                    hint = explain(self._settings, e)
                    if hint is not None:
                        extra["fix"] = hint
                    log.warning("etcd unreachable; this coordinator cannot act or "
                                "acknowledge keepalives once its session runs out",
                                extra=extra)
                failing = True
                self._cancel_watch()  # resume the watch (from our revision) once etcd answers
            self._wake.wait(interval if not failing else min(interval, 0.2))
            self._wake.clear()

    def _session_round(self) -> None:
        assert self._client is not None
        timeout = max(0.1, self._settings.session_ttl / 3)
        with self._lock:
            lease = self._lease
        if lease == 0:
            sent = self._clock()
            grant = self._client.grant(self._settings.session_ttl, timeout=timeout)
            with self._lock:
                self._lease = grant.ID
                self._granted_ttl = float(grant.TTL)
                self._valid_until = lease_valid_until(sent, grant.TTL)
            self._round_trip_ok(sent)
            log.info("etcd session started", extra={"node": self._node_id,
                                                    "lease": f"{grant.ID:x}", "ttl": grant.TTL})
        else:
            sent = self._clock()
            ttl = self._client.keepalive(lease, timeout=timeout)
            self._round_trip_ok(sent)
            if ttl <= 0:
                with self._lock:
                    self._lease = 0
                self._lost_leadership("session lease expired in etcd")
                log.warning("etcd session lease expired; starting a new one",
                            extra={"node": self._node_id, "lease": f"{lease:x}"})
                return
            with self._lock:
                lapsed = self._leader_rev != 0 and self._clock() >= self._valid_until
                self._granted_ttl = float(ttl)
                self._valid_until = lease_valid_until(sent, ttl)
            if lapsed:
                self._confirm_after_lapse()
        with self._lock:
            leading = self._leader_rev != 0
        if not leading:
            self._campaign()

    def _confirm_after_lapse(self) -> None:
        """Our lease survived a gap longer than we trust: if the leader key is still the
        one we created we lead again, as a new term (the controller waits a TTL)."""
        assert self._client is not None
        with self._lock:
            leader_rev = self._leader_rev
        resp = self._client.range(self._keys.leader, None, timeout=1.0)
        if resp.kvs and resp.kvs[0].create_revision == leader_rev:
            with self._lock:
                self._since = self._clock()
            log.info("leadership confirmed after a gap", extra={"node": self._node_id})
            self._notify()
        else:
            self._lost_leadership("leader key changed during a gap")

    def _campaign(self) -> None:
        assert self._client is not None
        with self._lock:
            lease = self._lease
        if lease == 0:
            return
        value = encode({"node": self._node_id, "lease": lease})
        resp = self._client.txn([create_revision_is(self._keys.leader, 0)],
                                [put_op(self._keys.leader, value, lease=lease)],
                                [range_op(self._keys.leader)],
                                timeout=max(0.1, self._settings.session_ttl / 3))
        if resp.succeeded:
            with self._lock:
                self._leader_rev = resp.header.revision
                self._since = self._clock()
            log.info("became leader", extra={"node": self._node_id, "lease": f"{lease:x}",
                                             "leader_revision": resp.header.revision})
            self._notify()
            return
        kvs = resp.responses[0].response_range.kvs
        if kvs:
            try:
                holder = json.loads(kvs[0].value)
            except ValueError:
                holder = {}
            if holder.get("node") == self._node_id and holder.get("lease") == lease:
                with self._lock:  # ours already (a retried campaign whose reply was lost)
                    self._leader_rev = kvs[0].create_revision
                    self._since = self._clock()
                self._notify()

    # -- watch: following the keys ----------------------------------------------------------

    def _resync(self) -> None:
        """Read every key under the prefix and rebuild the mirror at that revision."""
        assert self._client is not None
        sent = self._clock()
        resp = self._client.range(self._keys.root, self._keys.root_end, timeout=5.0)
        self._round_trip_ok(sent)
        kvs = [(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.lease)
               for kv in resp.kvs]
        with self._lock:
            if resp.header.revision >= self._mirror.revision:
                self._mirror.load(kvs, resp.header.revision)
                self._delivered = resp.header.revision
                self._check_leader_locked()
            self._progress.notify_all()
        if self._mirror.unreadable:
            log.error("keys under the prefix could not be read",
                      extra={"node": self._node_id, "keys": self._mirror.unreadable[:5]})
        self._notify()

    def _check_leader_locked(self) -> None:
        m = self._mirror
        if self._leader_rev and m.leader_revision >= self._leader_rev and (
                m.leader is None or m.leader.create_revision != self._leader_rev):
            self._leader_rev = 0
            self._since = None
            log.warning("lost leadership", extra={"node": self._node_id,
                                                  "reason": "leader key deleted or replaced"})
        if m.leader is None:
            self._wake.set()  # nobody leads: campaign now, not on the next round

    def _cancel_watch(self) -> None:
        with self._lock:
            watch = self._watch
            self._synced = False
        if watch is not None:
            watch.cancel()

    def _watch_loop(self) -> None:
        """Read the prefix once, then follow it with a watch from the next revision.

        A watch that ends (etcd unreachable, our session failed, a stream error) is
        resumed from the mirror's revision + 1: etcd delivers every change after it,
        or answers that the history is compacted, and only then is everything read
        again. A full read costs the whole state (5,000 groups: ~2 MB to decode), a
        resumed watch only what changed meanwhile."""
        backoff = 0.05
        need_read = True
        while self._running:
            try:
                if need_read:
                    self._resync()
                    need_read = False
                assert self._client is not None
                with self._lock:
                    # not the mirror's revision: our own writes move that past leader-key
                    # events the watch may not have delivered yet
                    start = self._delivered + 1
                stream = self._client.watch(self._keys.root, self._keys.root_end, start,
                                            timeout=2.0)
                with self._lock:
                    if not self._running:
                        stream.cancel()
                        return
                    self._watch = stream
                backoff = 0.05
                need_read = self._follow(stream)
            except EtcdRpcError as e:
                if self._running:
                    log.debug("etcd watch ended; resuming", extra={"node": self._node_id,
                                                                   "error": str(e)})
            with self._lock:
                self._synced = False
                self._watch = None
            if self._running:
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.5)

    def _follow(self, stream: WatchStream) -> bool:
        """Apply the stream's events; True if everything must be read again (etcd no
        longer has the history after our revision, or cancelled the watch)."""
        for resp in stream:
            if resp.compact_revision:
                log.warning("etcd watch compacted; re-reading", extra={
                    "node": self._node_id, "compact_revision": resp.compact_revision})
                stream.cancel()
                return True
            if resp.canceled:
                log.info("etcd watch cancelled by etcd; re-reading",
                         extra={"node": self._node_id, "reason": resp.cancel_reason})
                return True
            if resp.created:
                # etcd answered: the mirror plus this watch is the state from here on
                with self._lock:
                    self._synced = True
                    self._ever_synced = True
                    self._progress.notify_all()
            if not resp.events:
                continue
            changed = False
            with self._lock:
                top = self._mirror.revision
                for ev in resp.events:
                    kv = ev.kv
                    changed |= self._mirror.apply_event(
                        ev.type == ev.PUT, kv.key, kv.value, kv.create_revision,
                        kv.mod_revision, kv.lease)
                    top = max(top, kv.mod_revision)
                    self._delivered = max(self._delivered, kv.mod_revision)
                self._mirror.advance(top)
                self._check_leader_locked()
                self._progress.notify_all()
            if changed:
                self._notify()
        return False
