"""Transport hooks: fsync before sending, Raft-correct commit on followers, leader lease.

All hooks sit on pysyncobj's message boundary (``send`` and
``_onMessageReceived``) so the Raft core is untouched:

* **persist before acknowledging** - ``send`` syncs the journal before any
  message leaves, so a follower's "I have it" and a leader's replication
  both follow the fdatasync (group commit: one sync covers a batch). If the
  journal cannot persist (a failed write or sync, ``journal.fault``),
  nothing leaves at all until it can again.
* **commit only what the message covers** - pysyncobj's follower sets
  ``commitIndex = min(leaderCommit, lastLogIndex)``; with a stale tail past
  the message that commits entries the leader never vouched for. We clamp
  ``commit_index`` to the last index the message covers (Raft's
  "min(leaderCommit, index of last new entry)").
* **ignore stale resets** - a late ``next_node_idx`` reply with
  ``reset=True`` must not move the leader's nextIndex to or below what the
  follower is known to hold (matchIndex).
* **ignore replies from an earlier leadership** - pysyncobj's replies carry
  no term; the echoed send stamp tells us when a reply answers a message
  sent before this node's current leadership began, and such a reply is
  dropped.
* **leader lease** - see :class:`LeaseTracker`.
* **fast election after a leader crash** - when the connection to the
  current leader closes (its process died: the kernel closes the socket),
  a follower moves its election deadline to a short random delay instead
  of waiting the full election timeout. Safe: Raft allows an election at
  any time; without this the follower would time out anyway, since it
  gets no heartbeats over a closed connection. A host that vanishes
  without closing its sockets still costs the normal election timeout.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from typing import Any

from pysyncobj.node import Node
from pysyncobj.tcp_connection import CONNECTION_STATE
from pysyncobj.transport import TCPTransport, Transport

from . import internals
from .wire import REFUSED

logger = logging.getLogger(__name__)

STAMP_KEY = "vnfha_t"
ECHO_KEY = "vnfha_echo"
#: the message a node sends on a link that carried nothing for a while, so the peer
#: hears from it (pysyncobj of any version ignores a message type it does not know)
LINK_CHECK = {"type": "vnfha_link_check"}
#: a link sends a LINK_CHECK after this share of the connection timeout without output
LINK_CHECK_SHARE = 0.25


class LeaseTracker:
    """Leader-side record of the newest append_entries each follower answered.

    Every outgoing append_entries carries the leader's send time ``t``
    (``time.monotonic()``); a follower echoes the ``t`` of the message it is
    answering; the leader keeps, per follower, the largest echo received
    during its current leadership.

    ``quorum_contact()`` returns the largest ``m`` such that a majority of
    the cluster (the leader counts itself as "now") echoed a stamp ``>= m``.
    Why that makes a lease: a follower only answers an append_entries of
    term T while its own term is <= T, and terms only grow, so when it
    processed the message sent at ``m`` it had not yet voted in any newer
    term. A newer leader needs a vote from at least one member of that
    majority, cast after it answered us; hence no newer leader existed
    before ``m``, and everything this leader promised up to ``m`` was
    promised by the one real leader. Only the leader's own clock is used,
    so clocks of different hosts never mix.
    """

    def __init__(self, voters: set[str]) -> None:
        self._lock = threading.Lock()
        self._voters = frozenset(voters)
        self._majority = (len(self._voters) + 1) // 2 + 1
        self._acks: dict[str, float] = {}
        self._floor = math.inf  # stamps older than our leadership do not count

    def start_term(self, since: float) -> None:
        """Called when this node becomes leader: forget older contact."""
        with self._lock:
            self._acks.clear()
            self._floor = since

    def stop_term(self) -> None:
        with self._lock:
            self._acks.clear()
            self._floor = math.inf

    def record(self, peer: str, stamp: float) -> None:
        with self._lock:
            if peer in self._voters and stamp >= self._floor:
                if stamp > self._acks.get(peer, -math.inf):
                    self._acks[peer] = stamp

    def is_stale(self, stamp: float) -> bool:
        """True for an echo of a message sent before the current leadership began."""
        with self._lock:
            return stamp < self._floor

    def quorum_contact(self, now: float) -> float | None:
        """Latest time at which a majority is known to have still followed us."""
        with self._lock:
            if self._floor == math.inf:
                return None
            stamps = sorted([now, *self._acks.values()], reverse=True)
        if len(stamps) < self._majority:
            return None
        return stamps[self._majority - 1]


def clamp_commit_index(message: dict[str, Any]) -> None:
    """Limit a follower's commit to what this append_entries proves it holds."""
    commit = message.get("commit_index")
    if not isinstance(commit, int):
        return
    if "prevLogIdx" in message:
        transmission = message.get("transmission")
        prev = message.get("prevLogIdx")
        if not isinstance(prev, int):
            message["commit_index"] = 0
            return
        if transmission in ("start", "process"):
            limit = prev  # the handler returns before touching the commit index anyway
        elif transmission == "finish":
            limit = prev + 1  # the reassembled message is the single entry prev + 1
        else:
            entries = message.get("entries") or []
            limit = entries[-1][1] if entries else prev
        message["commit_index"] = min(commit, limit)
    else:
        serialized = message.get("serialized")
        # Only the last chunk of a snapshot replaces our log; before that our
        # log proves nothing about the leader's.
        if not (isinstance(serialized, tuple | list) and len(serialized) == 3 and serialized[2]):
            message["commit_index"] = 0


class HardeningMixin:
    """Mixed into a pysyncobj Transport; see the module docstring."""

    _vnfha_inbound: tuple[Node, float] | None

    def _vnfha_setup(self, sync_obj: Any) -> None:
        self._vnfha_core = sync_obj
        self._vnfha_journal = sync_obj._vnfha_journal
        self._vnfha_lease: LeaseTracker = sync_obj._vnfha_lease
        self._vnfha_inbound = None
        sync_obj.addOnTickCallback(self._vnfha_tick_sync)

    def _vnfha_tick_sync(self) -> None:
        """End of every tick: persist what this tick appended.

        A lone node never sends, so this is what makes its entries durable
        before the next tick counts them committed; that next tick is then
        run at once instead of after the idle poll timeout. Then the disk
        guard acts on a write failure (guard.py: step down, retry, give up).
        """
        if self._vnfha_journal.sync():
            internals.wake_tick(self._vnfha_core)
        guard = getattr(self._vnfha_core, "_vnfha_guard", None)
        if guard is not None:
            guard.on_tick(self._vnfha_core)

    def _onNodeDisconnected(self, node: Node) -> None:  # pysyncobj API name
        super()._onNodeDisconnected(node)  # type: ignore[misc]
        core = self._vnfha_core
        if not getattr(core, "_vnfha_fast_election", False) or internals.is_leader(core):
            return
        if internals.leader_node(core) == node:
            internals.pull_election_deadline(
                core, random.uniform(0.02, core.conf.raftMinTimeout / 2))

    def send(self, node: Node, message: Any) -> bool:
        self._vnfha_journal.sync()
        if self._vnfha_journal.fault is not None:
            # Cannot persist: pysyncobj builds "I have it" replies from the message
            # it got, not from what reached the disk, so nothing leaves (guard.py).
            return False
        if isinstance(message, dict):
            kind = message.get("type")
            if kind == "append_entries":
                message[STAMP_KEY] = time.monotonic()
            elif kind == "next_node_idx":
                inbound = self._vnfha_inbound
                if inbound is not None and inbound[0] == node:
                    message[ECHO_KEY] = inbound[1]
        return super().send(node, message)  # type: ignore[misc,no-any-return]

    def _onMessageReceived(self, node: Node, message: Any) -> None:
        if self._vnfha_journal.fault is not None:
            # Cannot persist: nothing we do with a message can be acknowledged (send()
            # drops every reply), and a rolled-back journal may be shorter than
            # pysyncobj assumes (an empty one made its append handler raise on every
            # tick). The leader resends once we recover (guard.py retries).
            return
        if isinstance(message, dict):
            kind = message.get("type")
            if kind == LINK_CHECK["type"]:
                return  # reading it was the point: the link is alive
            if kind == "append_entries":
                clamp_commit_index(message)
                stamp = message.get(STAMP_KEY)
                self._vnfha_inbound = (node, stamp) if isinstance(stamp, float) else None
                try:
                    super()._onMessageReceived(node, message)  # type: ignore[misc]
                finally:
                    self._vnfha_inbound = None
                return
            if kind == "next_node_idx" and internals.is_leader(self._vnfha_core):
                echo = message.get(ECHO_KEY)
                if isinstance(echo, float):
                    if self._vnfha_lease.is_stale(echo):
                        # pysyncobj replies carry no term: a reply to a message of
                        # an earlier leadership must not set this term's indexes.
                        return
                    self._vnfha_lease.record(node.id, echo)
                self._vnfha_filter_stale_reset(node, message)
        super()._onMessageReceived(node, message)  # type: ignore[misc]

    def _vnfha_filter_stale_reset(self, node: Node, message: dict[str, Any]) -> None:
        if not message.get("reset"):
            return
        nxt = message.get("next_node_idx")
        matched = internals.match_index(self._vnfha_core).get(node)
        if isinstance(nxt, int) and matched is not None and nxt <= matched:
            logger.debug("ignoring stale reset from %s: next %d <= match %d", node, nxt, matched)
            message["reset"] = False


#: connections accepted but not yet identified as a member; beyond this the oldest is closed
MAX_PENDING_CONNECTIONS = 16
_RAND_KEY_BYTES = 32  # pysyncobj's handshake key: os.urandom(32)


class HardenedTCPTransport(HardeningMixin, TCPTransport):
    """pysyncobj's TCP transport with our hooks (pass as ``transportClass``).

    On top of the hooks above, for the Raft port (see docs/design.md, "Raft wire"):

    * a node without peers opens **no listener at all**: nobody has a reason
      to connect to it, so there is nothing to attack. With peers the
      listener binds to the configured address only (``bindAddress``, set
      by log.py), never to all interfaces.
    * an incoming connection must identify itself as a configured member
      after the handshake; pysyncobj's "readonly" clients and utility
      commands (status, add, remove, ...) are refused, since we use neither.
    * connections that have not identified themselves within the connection
      timeout are closed, and at most :data:`MAX_PENDING_CONNECTIONS` wait
      at once (the oldest goes first), so idle sockets cannot pile up.
    """

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:
        others = list(otherNodes)
        self._vnfha_members = frozenset(str(getattr(n, "address", n)) for n in others)
        self._vnfha_pending: dict[Any, float] = {}
        super().__init__(syncObj, selfNode, others)
        self._vnfha_setup(syncObj)
        syncObj.addOnTickCallback(self._vnfha_sweep_pending)
        syncObj.addOnTickCallback(self._vnfha_check_links)

    # ------------------------------------------------------------- sending
    def send(self, node: Node, message: Any) -> bool:
        """Nothing of Raft's on a link whose handshake is still under way.

        pysyncobj only checks that the socket is connected; its candidates
        (request_vote) and followers (apply_command) send without waiting for
        the handshake, so the message leaves without the peer's key, and the peer
        refuses it and closes the link ("frame does not carry this connection's
        handshake key"). On an idle machine the handshake takes a millisecond and
        the race is rare; on a starved one the peer answers late and every
        reconnect was broken again. Raft copes with a message not sent (the
        candidate asks again at its next timeout, the command is handed over
        again), not with a link that never comes up.
        """
        conn = self._connections.get(node)
        if conn is not None and conn.encryptor is not None and not conn.sendRandKey:
            return False
        return super().send(node, message)  # type: ignore[no-any-return]

    def _vnfha_check_links(self) -> None:
        """Send LINK_CHECK on every identified link that carried nothing for a while.

        A connection that read nothing for the connection timeout is closed at
        its next send. Raft leaves the link between two followers silent for as
        long as the leader lasts, so the first vote request after a quiet spell
        (a leader lost) closed it instead of leaving: the election needed a
        second round, and the link a reconnect. A peer that really vanished
        still goes silent and is closed one timeout later.
        """
        every = self._vnfha_core.conf.connectionTimeout * LINK_CHECK_SHARE
        now = time.monotonic()
        for node in list(self._nodes):
            conn = self._connections.get(node)
            if conn is not None and conn.state == CONNECTION_STATE.CONNECTED \
                    and now - conn.last_send >= every:
                self.send(node, dict(LINK_CHECK))

    # ------------------------------------------------------------ listener
    def _createServer(self) -> None:  # pysyncobj API name
        if self._vnfha_members:
            super()._createServer()

    def _maybeBind(self) -> None:  # pysyncobj API name
        if not self._vnfha_members:
            internals.mark_transport_ready(self)
            return
        super()._maybeBind()

    # ------------------------------------------------- incoming connections
    def _onNewIncomingConnection(self, conn: Any) -> None:  # pysyncobj API name
        pending = self._vnfha_pending
        while len(pending) >= MAX_PENDING_CONNECTIONS:
            oldest = min(pending, key=pending.__getitem__)
            pending.pop(oldest)
            REFUSED.warn("too many unidentified connections", getattr(oldest, "peer", None))
            oldest.disconnect()
        pending[conn] = time.monotonic()
        super()._onNewIncomingConnection(conn)

    def _onIncomingMessageReceived(self, conn: Any, message: Any) -> None:  # pysyncobj API
        if self._vnfha_core.encryptor and not conn.sendRandKey:
            if type(message) is not bytes or len(message) != _RAND_KEY_BYTES:
                self._vnfha_refuse(conn, "bad handshake key")
                return
        elif type(message) is not str or message not in self._vnfha_members:
            self._vnfha_refuse(conn, "not a cluster member")
            return
        else:
            self._vnfha_pending.pop(conn, None)
        super()._onIncomingMessageReceived(conn, message)

    def _onDisconnected(self, conn: Any) -> None:  # pysyncobj API name
        self._vnfha_pending.pop(conn, None)
        super()._onDisconnected(conn)

    def _vnfha_refuse(self, conn: Any, reason: str) -> None:
        self._vnfha_pending.pop(conn, None)
        REFUSED.warn(reason, getattr(conn, "peer", None))
        conn.disconnect()

    def _vnfha_sweep_pending(self) -> None:
        if not self._vnfha_pending:
            return
        cutoff = time.monotonic() - self._vnfha_core.conf.connectionTimeout
        for conn, since in list(self._vnfha_pending.items()):
            if since < cutoff:
                self._vnfha_refuse(conn, "no handshake within the connection timeout")


__all__ = ["HardenedTCPTransport", "HardeningMixin", "LeaseTracker", "Transport",
           "clamp_commit_index"]
