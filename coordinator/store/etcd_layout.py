"""How the replicated state is laid out in etcd keys, and the mirror that reads it back.

A command writes only the keys it changed, in one transaction. Why per key: with
nodes and groups in one value, every command rewrote all of them (1.82 MB at 5,000
groups: over etcd's 1.5 MiB request limit, so nothing committed above ~4,300
groups; and etcd keeps every revision until compaction, 2.39 GB after ~5,000
commands at 1,000 groups). Layout 2:

``<prefix>/cluster``          the cluster-wide record: layout, revision, next event
                              number, paused, removed nodes, failsafe lease. Every vnfha
                              write puts it, so its mod revision totally orders the
                              writes (~100 bytes)
``<prefix>/groups/<g>``       group g (members, roles, epoch, pool, recoveries)
``<prefix>/nodes/<n>``        node n's record (address, maintenance, stopped, rejoining)
``<prefix>/queue-offsets/<g>`` group g's next queue offset
``<prefix>/history/<block>``  the event history, 10 events per key (block = seq // 10):
                              a command rewrites the one block its events went to
``<prefix>/checkpoints/<g>``  group g's checkpoint (state sync)
``<prefix>/queue/<g>/<off>``  one key per retained message of group g's queue
``<prefix>/rids/<rid>``       one key per remembered request id: its result
``<prefix>/leader``           the elected coordinator (on its session lease)
``<prefix>/events/<block>``   layout 1's event history (50 events per key)
``<prefix>/state``            layout 1 kept nodes, groups and the cluster record here
                              (one JSON object). Layout 2 puts a JSON *list* there when it
                              creates the cluster key: an older coordinator cannot use it
                              (its reads fail) instead of reading an empty state and
                              writing over the cluster's.

Layout 1 is read as it is (`Mirror.legacy`) and converted once, by the first write
(`conversion_chunks`). Everything here is pure (no I/O): `write_ops` says which keys
a command puts and deletes, `Mirror` rebuilds the state from keys and watch events,
replacing only the group and node objects whose keys changed (so identity still tells
what changed, model.advance_index).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from vnfha.coordinator.model import (
    DEFAULT_FAILSAFE_LEASE_MS,
    Checkpoint,
    ClusterState,
    Event,
    Group,
    GroupQueue,
    Node,
    QueueMessage,
    checkpoint_from_dict,
    checkpoint_to_dict,
    message_from_dict,
    message_to_dict,
    state_from_dict,
    state_to_dict,
)
from vnfha.coordinator.state_machine import DEDUP_WINDOW

Result = dict[str, Any]
#: events per history key (layout 2); layout 1's `events/` keys held 50, so a command
#: rewrote ~6 KB of history alone
EVENTS_PER_BLOCK = 10
LEGACY_EVENTS_PER_BLOCK = 50
#: the layout this code writes (the cluster key's "layout")
LAYOUT = 2
#: what layout 2 leaves in <prefix>/state: not an object, so a layout-1 reader fails
STATE_MARKER = json.dumps(["vnfha etcd layout 2: one key per group and node under this "
                           "prefix; this coordinator is older than the data, upgrade it"]
                          ).encode()
#: Operations one command may need in its transaction: a batch or apply_groups or a
#: node registration touches up to 1,024 groups (commands.MAX_*), plus event blocks,
#: its request id and the cluster key. etcd must accept this many (--max-txn-ops;
#: etcd's default is 128); the coordinator checks at start (etcd_access.py).
TXN_OPS_NEEDED = 2048
#: operations per transaction while converting layout 1: within etcd's default limit,
#: so an upgrade works before --max-txn-ops is raised
CONVERT_CHUNK = 100


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (bytes, as etcd takes them)."""

    prefix: str

    @property
    def root(self) -> bytes:
        return (self.prefix + "/").encode()

    @property
    def root_end(self) -> bytes:
        """The range end that covers every key under the prefix."""
        return prefix_end(self.root)

    @property
    def cluster(self) -> bytes:
        return f"{self.prefix}/cluster".encode()

    @property
    def state(self) -> bytes:
        """Layout 1's single state key (layout 2: the marker)."""
        return f"{self.prefix}/state".encode()

    @property
    def leader(self) -> bytes:
        return f"{self.prefix}/leader".encode()

    def group(self, name: str) -> bytes:
        return f"{self.prefix}/groups/{name}".encode()

    def node(self, name: str) -> bytes:
        return f"{self.prefix}/nodes/{name}".encode()

    def queue_offset(self, group: str) -> bytes:
        return f"{self.prefix}/queue-offsets/{group}".encode()

    def event_block(self, block: int) -> bytes:
        return f"{self.prefix}/history/{block:010d}".encode()

    def legacy_event_block(self, block: int) -> bytes:
        return f"{self.prefix}/events/{block:010d}".encode()

    def rid(self, rid: str) -> bytes:
        return f"{self.prefix}/rids/{rid}".encode()

    def checkpoint(self, group: str) -> bytes:
        return f"{self.prefix}/checkpoints/{group}".encode()

    def message(self, group: str, offset: int) -> bytes:
        return f"{self.prefix}/queue/{group}/{offset:020d}".encode()

    def probe(self, i: int) -> bytes:
        """Keys the start-up check names in a transaction that never applies."""
        return f"{self.prefix}/txn-probe/{i}".encode()

    def classify(self, key: bytes) -> tuple[str, str]:
        """(kind, suffix): kind is "cluster", "state", "leader", one of `_KINDS`, or
        "other"."""
        text = key.decode(errors="replace")
        if not text.startswith(self.prefix + "/"):
            return "other", text
        rest = text[len(self.prefix) + 1:]
        if rest in ("cluster", "state", "leader"):
            return rest, ""
        kind, _, suffix = rest.partition("/")
        if kind in _KINDS and suffix:
            return kind, suffix
        return "other", rest


_KINDS = ("groups", "nodes", "queue-offsets", "history", "events", "rids", "checkpoints",
          "queue")


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key starting with prefix"."""
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


# -- values: one group, one node, the cluster record ------------------------------------------
# The model's own plain-data conversion (state_to_dict / state_from_dict) is used on a
# state holding just the one object, so the format is the snapshots' format.


def group_value(g: Group) -> bytes:
    return encode(state_to_dict(ClusterState(groups={g.name: g}))["groups"][g.name])


def node_value(n: Node) -> bytes:
    return encode(state_to_dict(ClusterState(nodes={n.name: n}))["nodes"][n.name])


def cluster_record(state: ClusterState) -> dict[str, Any]:
    d: dict[str, Any] = {"layout": LAYOUT, "revision": state.revision,
                         "next_event_seq": state.next_event_seq}
    if state.paused:
        d["paused"] = True
    if state.removed_nodes:
        d["removed_nodes"] = sorted(state.removed_nodes)
    d["failsafe_lease_ms"] = state.failsafe_lease_ms  # always: absent reads as the default
    return d


def _decode_groups(raw: dict[str, Any]) -> dict[str, Group]:
    return state_from_dict({"groups": raw}).groups


def _decode_nodes(raw: dict[str, Any]) -> dict[str, Node]:
    return state_from_dict({"nodes": raw}).nodes


def _event_dict(e: Event) -> dict[str, Any]:
    return {"seq": e.seq, "at": e.at, "kind": e.kind, "group": e.group, "member": e.member,
            "node": e.node, "epoch": e.epoch, "reason": e.reason}


# -- what a command writes --------------------------------------------------------------------


@dataclass(frozen=True)
class WriteOps:
    puts: dict[bytes, bytes]
    deletes: tuple[bytes, ...]

    @property
    def count(self) -> int:
        return len(self.puts) + len(self.deletes)

    @property
    def size(self) -> int:
        """Bytes of keys and values this writes (what etcd's request limit counts)."""
        return sum(len(k) + len(v) for k, v in self.puts.items()) + sum(map(len, self.deletes))


def _changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(names put, names gone): the state is immutable and commands replace only what
    they change, so identity finds the candidates; equality drops a replacement that
    changed nothing (a key is written only when its value changes)."""
    put = [n for n, v in after.items() if (old := before.get(n)) is not v and old != v]
    gone = [n for n in before if n not in after]
    return put, gone


def _data_ops(keys: Keys, before: ClusterState, after: ClusterState,
              puts: dict[bytes, bytes], deletes: list[bytes]) -> None:
    """Checkpoint, queue-message and queue-offset keys that changed."""
    for g in before.checkpoints.keys() | after.checkpoints.keys():
        old, new = before.checkpoints.get(g), after.checkpoints.get(g)
        if new is old:
            continue
        if new is None:
            deletes.append(keys.checkpoint(g))
        else:
            puts[keys.checkpoint(g)] = encode(checkpoint_to_dict(new))
    for g in before.queues.keys() | after.queues.keys():
        oldq, newq = before.queues.get(g), after.queues.get(g)
        if newq is oldq:
            continue
        old_offsets = {m.offset for m in oldq.messages} if oldq else set()
        new_msgs = {m.offset: m for m in newq.messages} if newq else {}
        for off in sorted(new_msgs.keys() - old_offsets):
            puts[keys.message(g, off)] = encode(message_to_dict(new_msgs[off]))
        deletes.extend(keys.message(g, off) for off in sorted(old_offsets - new_msgs.keys()))
        if newq is None:
            deletes.append(keys.queue_offset(g))
        elif oldq is None or oldq.next_offset != newq.next_offset:
            puts[keys.queue_offset(g)] = encode({"next_offset": newq.next_offset})


def write_ops(keys: Keys, before: ClusterState, after: ClusterState,
              rid: str | None, result: Result | None,
              evict: tuple[str, ...] = (), create: bool = False) -> WriteOps:
    """The keys one command changes: the cluster record (always: it orders every
    write), the groups, nodes and event blocks that changed, state-sync data, the new
    request id and evicted ones. `create`: the cluster key does not exist yet (a new
    prefix), so the layout marker goes into the old state key too."""
    puts: dict[bytes, bytes] = {keys.cluster: encode(cluster_record(after))}
    if create:
        puts[keys.state] = STATE_MARKER
    deletes: list[bytes] = []
    put, gone = _changed(before.groups, after.groups)
    puts.update((keys.group(n), group_value(after.groups[n])) for n in put)
    deletes.extend(keys.group(n) for n in gone)
    put, gone = _changed(before.nodes, after.nodes)
    puts.update((keys.node(n), node_value(after.nodes[n])) for n in put)
    deletes.extend(keys.node(n) for n in gone)
    if before.events is not after.events:
        old = {e.seq for e in before.events}
        new = {e.seq for e in after.events}
        touched = {seq // EVENTS_PER_BLOCK for seq in old ^ new}
        by_block: dict[int, list[dict[str, Any]]] = {}
        for e in after.events:
            if e.seq // EVENTS_PER_BLOCK in touched:
                by_block.setdefault(e.seq // EVENTS_PER_BLOCK, []).append(_event_dict(e))
        for block in sorted(touched):
            if block in by_block:
                puts[keys.event_block(block)] = encode(by_block[block])
            else:
                deletes.append(keys.event_block(block))
    _data_ops(keys, before, after, puts, deletes)
    if rid is not None and result is not None:
        puts[keys.rid(rid)] = encode(result)
    deletes.extend(keys.rid(r) for r in evict)
    return WriteOps(puts=puts, deletes=tuple(deletes))


def evictions(rids: dict[str, Result], adding: int = 1) -> tuple[str, ...]:
    """Oldest request ids to forget so the table stays within the state machine's
    window after `adding` more (`rids` is ordered oldest first)."""
    over = len(rids) + adding - DEDUP_WINDOW
    if over <= 0:
        return ()
    return tuple(r for r, _ in zip(rids, range(over), strict=False))


def conversion_chunks(keys: Keys, mirror: Mirror) -> list[WriteOps]:
    """Layout 1 -> 2: transactions of at most CONVERT_CHUNK operations that write every
    group, node and queue offset of the layout-1 state as its own key and its events
    as history blocks, and delete layout 1's event blocks and any layout-2 key the
    layout-1 state does not have (left by a conversion that did not finish); the last
    one creates the cluster key and puts the marker into the old state key. The caller
    runs them in order, each comparing the old state key's mod revision (and that the
    cluster key is absent), so all of them describe one layout-1 revision.
    Checkpoints, queue messages and request ids have the same keys in both layouts."""
    assert mirror.legacy is not None
    st = mirror.state
    items: list[tuple[bytes, bytes | None]] = []
    items += [(keys.group(n), group_value(g)) for n, g in st.groups.items()]
    items += [(keys.node(n), node_value(v)) for n, v in st.nodes.items()]
    items += [(keys.queue_offset(g), encode({"next_offset": q.next_offset}))
              for g, q in st.queues.items()]
    items += [(keys.group(n), None) for n in mirror.groups if n not in st.groups]
    items += [(keys.node(n), None) for n in mirror.nodes if n not in st.nodes]
    items += [(keys.queue_offset(g), None) for g in mirror.queue_offsets
              if g not in st.queues]
    blocks: dict[int, list[dict[str, Any]]] = {}
    for e in st.events:
        blocks.setdefault(e.seq // EVENTS_PER_BLOCK, []).append(_event_dict(e))
    items += [(keys.event_block(b), encode(evs)) for b, evs in sorted(blocks.items())]
    items += [(keys.event_block(b), None) for b in mirror.history if b not in blocks]
    items += [(keys.legacy_event_block(b), None) for b in mirror.blocks]
    chunks = []
    for i in range(0, len(items), CONVERT_CHUNK):
        part = items[i:i + CONVERT_CHUNK]
        chunks.append(WriteOps(puts={k: v for k, v in part if v is not None},
                               deletes=tuple(k for k, v in part if v is None)))
    chunks.append(WriteOps(puts={keys.cluster: encode(cluster_record(st)),
                                 keys.state: STATE_MARKER}, deletes=()))
    return chunks


# -- reading it back --------------------------------------------------------------------------


@dataclass
class LeaderRecord:
    node: str
    lease: int
    create_revision: int


@dataclass
class Mirror:
    """The vnfha keys as this process last read them, at etcd revision `revision`.

    Not thread-safe: the store guards it with its lock. `state` is rebuilt lazily
    after a change and is an immutable ClusterState, safe to hand out; the group and
    node objects whose keys did not change are the same objects as before."""

    keys: Keys
    revision: int = 0
    #: mod revision of the cluster key (0: absent); every layout-2 write compares it
    cluster_revision: int = 0
    #: mod revision of the old state key (0: absent)
    state_revision: int = 0
    cluster: dict[str, Any] | None = None
    #: layout 1's state object, while the prefix has not been converted
    legacy: dict[str, Any] | None = None
    groups: dict[str, Group] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    queue_offsets: dict[str, int] = field(default_factory=dict)
    #: layout 2's event history, by block (EVENTS_PER_BLOCK)
    history: dict[int, tuple[Event, ...]] = field(default_factory=dict)
    #: layout 1's, by block (LEGACY_EVENTS_PER_BLOCK)
    blocks: dict[int, tuple[Event, ...]] = field(default_factory=dict)
    # Insertion order is creation order (etcd create revision): oldest first.
    rids: dict[str, Result] = field(default_factory=dict)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    messages: dict[str, dict[int, QueueMessage]] = field(default_factory=dict)
    leader: LeaderRecord | None = None
    leader_revision: int = 0
    _state: ClusterState | None = None
    #: keys under the prefix this version cannot read (a newer vnfha, or damage)
    unreadable: list[str] = field(default_factory=list)
    #: the cluster key says a newer layout: read what we can, never write
    too_new: bool = False

    @property
    def layout(self) -> int:
        """2 once the cluster key exists, 1 while only layout 1's state key does, 0 for
        an empty prefix."""
        if self.cluster is not None:
            return 2
        return 1 if self.legacy is not None else 0

    @property
    def order_revision(self) -> int:
        """The mod revision that orders writes: the cluster key's, or (layout 1) the
        state key's."""
        return self.cluster_revision if self.cluster is not None else self.state_revision

    def load(self, kvs: list[tuple[bytes, bytes, int, int, int]], revision: int) -> None:
        """Replace everything with a full read: (key, value, create_rev, mod_rev, lease)."""
        self.cluster = self.legacy = None
        self.groups, self.nodes, self.queue_offsets = {}, {}, {}
        self.history, self.blocks, self.rids, self.checkpoints, self.messages = \
            {}, {}, {}, {}, {}
        self.leader = None
        self.unreadable = []
        self.too_new = False
        self.cluster_revision = self.state_revision = 0
        rid_rows = []
        raw_groups: dict[str, Any] = {}
        raw_nodes: dict[str, Any] = {}
        for key, value, create_rev, mod_rev, lease in kvs:
            kind, suffix = self.keys.classify(key)
            if kind == "rids":
                rid_rows.append((create_rev, suffix, value))
            elif kind in ("groups", "nodes"):  # decoded together below: one pass each
                try:
                    (raw_groups if kind == "groups" else raw_nodes)[suffix] = json.loads(value)
                except ValueError as e:
                    self.unreadable.append(f"{kind}/{suffix}: {e}")
            else:
                self._put(kind, suffix, value, create_rev, mod_rev, lease)
        for _, rid, value in sorted(rid_rows):
            with contextlib.suppress(ValueError):
                self.rids[rid] = json.loads(value)
        self.groups = self._decode_many("groups", raw_groups, _decode_groups)
        self.nodes = self._decode_many("nodes", raw_nodes, _decode_nodes)
        self.revision = revision
        self.leader_revision = revision
        self._state = None

    def _decode_many(self, kind: str, raw: dict[str, Any], decode: Any) -> dict[str, Any]:
        try:
            return decode(raw)
        except (ValueError, TypeError, KeyError, AttributeError):
            out = {}
            for name, d in raw.items():  # find the bad one(s); keep the rest
                try:
                    out.update(decode({name: d}))
                except (ValueError, TypeError, KeyError, AttributeError) as e:
                    self.unreadable.append(f"{kind}/{name}: {e!r}")
            return out

    def apply_event(self, put: bool, key: bytes, value: bytes, create_rev: int,
                    mod_rev: int, lease: int) -> bool:
        """One watch event. Data events at or below `revision` are already in (our own
        writes jump ahead); leader events are tracked on their own revision. Returns True
        if the state may have changed."""
        kind, suffix = self.keys.classify(key)
        if kind == "leader":
            if mod_rev <= self.leader_revision:
                return False
            self.leader_revision = mod_rev
            self.leader = _leader_of(value, create_rev) if put else None
            return False
        if mod_rev <= self.revision:
            return False
        if put:
            self._put(kind, suffix, value, create_rev, mod_rev, lease)
        else:
            self._delete(kind, suffix)
        self._state = None
        return kind not in ("rids", "other")

    def _delete(self, kind: str, suffix: str) -> None:
        if kind == "rids":
            self.rids.pop(suffix, None)
        elif kind == "groups":
            self.groups.pop(suffix, None)
        elif kind == "nodes":
            self.nodes.pop(suffix, None)
        elif kind == "queue-offsets":
            self.queue_offsets.pop(suffix, None)
        elif kind == "history":
            with contextlib.suppress(ValueError):
                self.history.pop(int(suffix), None)
        elif kind == "events":
            with contextlib.suppress(ValueError):
                self.blocks.pop(int(suffix), None)
        elif kind == "checkpoints":
            self.checkpoints.pop(suffix, None)
        elif kind == "queue":
            group, _, offset = suffix.rpartition("/")
            with contextlib.suppress(ValueError):
                self.messages.get(group, {}).pop(int(offset), None)
        elif kind == "cluster":
            self.cluster, self.cluster_revision = None, 0
        elif kind == "state":
            self.legacy, self.state_revision = None, 0

    def advance(self, revision: int) -> None:
        """Every data event up to `revision` is in (watch responses end at a revision)."""
        self.revision = max(self.revision, revision)

    def adopt(self, revision: int, ops: WriteOps, after: ClusterState, rid: str | None,
              result: Result | None, evicted: tuple[str, ...]) -> None:
        """Our own transaction committed at `revision`: nothing else wrote data between
        the state we read and it (every write compares the cluster key's mod revision),
        so the mirror is what we computed. A full read that already includes it wins."""
        if revision <= self.revision:
            return
        self.cluster = cluster_record(after)
        self.cluster_revision = revision
        if self.keys.state in ops.puts:
            self.legacy, self.state_revision = None, revision
        self.groups = dict(after.groups)
        self.nodes = dict(after.nodes)
        self.queue_offsets = {g: q.next_offset for g, q in after.queues.items()}
        for key in ops.deletes:
            kind, suffix = self.keys.classify(key)
            if kind == "history":
                self.history.pop(int(suffix), None)
        for key in ops.puts:
            kind, suffix = self.keys.classify(key)
            if kind == "history":
                block = int(suffix)
                self.history[block] = tuple(e for e in after.events
                                            if e.seq // EVENTS_PER_BLOCK == block)
        self.checkpoints = dict(after.checkpoints)
        self.messages = {g: {m.offset: m for m in q.messages} for g, q in after.queues.items()}
        for r in evicted:
            self.rids.pop(r, None)
        if rid is not None and result is not None:
            self.rids[rid] = result
        self.revision = max(self.revision, revision)
        self._state = after

    def _put(self, kind: str, suffix: str, value: bytes, create_rev: int, mod_rev: int,
             lease: int) -> None:
        try:
            if kind == "cluster":
                d = json.loads(value)
                if not isinstance(d, dict):
                    raise ValueError("not an object")
                self.cluster, self.cluster_revision = d, mod_rev
                self.too_new = int(d.get("layout", 0)) > LAYOUT
                if self.too_new:
                    raise ValueError(f"layout {d.get('layout')} is newer than this vnfha's "
                                     f"({LAYOUT}): upgrade this coordinator")
            elif kind == "state":
                d = json.loads(value)
                self.state_revision = mod_rev
                self.legacy = d if isinstance(d, dict) else None  # a list: the marker
            elif kind == "groups":
                self.groups[suffix] = _decode_groups({suffix: json.loads(value)})[suffix]
            elif kind == "nodes":
                self.nodes[suffix] = _decode_nodes({suffix: json.loads(value)})[suffix]
            elif kind == "queue-offsets":
                self.queue_offsets[suffix] = int(json.loads(value)["next_offset"])
            elif kind == "history":
                self.history[int(suffix)] = tuple(Event(**e) for e in json.loads(value))
            elif kind == "events":
                self.blocks[int(suffix)] = tuple(Event(**e) for e in json.loads(value))
            elif kind == "rids":
                self.rids.pop(suffix, None)  # re-created: it is now the newest
                self.rids[suffix] = json.loads(value)
            elif kind == "checkpoints":
                self.checkpoints[suffix] = checkpoint_from_dict(json.loads(value))
            elif kind == "queue":
                msg = message_from_dict(json.loads(value))
                self.messages.setdefault(suffix.rpartition("/")[0], {})[msg.offset] = msg
            elif kind == "leader":
                self.leader = _leader_of(value, create_rev)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            self.unreadable.append(f"{kind}/{suffix}: {e}")

    @property
    def state(self) -> ClusterState:
        if self._state is None:
            if self.cluster is None and self.legacy is not None:
                base = state_from_dict(self.legacy)  # layout 1, not converted yet
                events = tuple(e for b in sorted(self.blocks) for e in self.blocks[b])
                offsets = {g: q.next_offset for g, q in base.queues.items()}
            else:
                c = self.cluster or {}
                base = ClusterState(revision=int(c.get("revision", 0)),
                                    next_event_seq=int(c.get("next_event_seq", 1)),
                                    nodes=dict(self.nodes), groups=dict(self.groups),
                                    paused=bool(c.get("paused", False)),
                                    removed_nodes=frozenset(c.get("removed_nodes", ())),
                                    failsafe_lease_ms=int(c.get(
                                        "failsafe_lease_ms", DEFAULT_FAILSAFE_LEASE_MS)))
                offsets = self.queue_offsets
                events = tuple(e for b in sorted(self.history) for e in self.history[b])
            queues = {}
            for g, next_offset in offsets.items():
                msgs = tuple(m for _, m in sorted(self.messages.get(g, {}).items()))
                queues[g] = GroupQueue(messages=msgs, next_offset=next_offset,
                                       size=sum(len(m.data) for m in msgs))
            self._state = replace(base, events=events, checkpoints=dict(self.checkpoints),
                                  queues=queues)
        return self._state


def _leader_of(value: bytes, create_rev: int) -> LeaderRecord | None:
    try:
        d = json.loads(value)
        return LeaderRecord(node=str(d["node"]), lease=int(d["lease"]),
                            create_revision=create_rev)
    except (ValueError, TypeError, KeyError):
        return LeaderRecord(node=value.decode(errors="replace"), lease=0,
                            create_revision=create_rev)
