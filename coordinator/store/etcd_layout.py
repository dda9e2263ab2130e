"""How the replicated state is laid out in etcd keys, and the mirror that reads it back.

One JSON snapshot of the whole `StateMachine` would be simple, but with the
1000-event history and the 10,000-entry request-id table it is ~750 KB: every
command would rewrite it (etcd keeps every revision until compaction) and it
sits close to etcd's 1.5 MiB request limit. So the snapshot is split, and a
command writes only what it changed:

``<prefix>/state``            the state without its events, checkpoints and queued
                              messages (nodes, groups, revision, each queue's next offset);
                              every vnfha write puts it, so its mod revision orders them
``<prefix>/events/<block>``   the event history, 50 events per key (block = seq // 50)
``<prefix>/checkpoints/<g>``  group g's checkpoint (state sync): rewritten only when it
                              changes, so role changes never carry checkpoint bytes
``<prefix>/queue/<g>/<off>``  one key per retained message of group g's queue
``<prefix>/rids/<rid>``       one key per remembered request id: its result
``<prefix>/leader``           the elected coordinator (on its session lease)

Everything here is pure (no I/O): `write_ops` says which keys a command puts and
deletes, `Mirror` rebuilds the state from keys and watch events.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from vnfha.coordinator.model import (
    Checkpoint,
    ClusterState,
    Event,
    GroupQueue,
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
EVENTS_PER_BLOCK = 50


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
    def state(self) -> bytes:
        return f"{self.prefix}/state".encode()

    @property
    def leader(self) -> bytes:
        return f"{self.prefix}/leader".encode()

    def event_block(self, block: int) -> bytes:
        return f"{self.prefix}/events/{block:010d}".encode()

    def rid(self, rid: str) -> bytes:
        return f"{self.prefix}/rids/{rid}".encode()

    def checkpoint(self, group: str) -> bytes:
        return f"{self.prefix}/checkpoints/{group}".encode()

    def message(self, group: str, offset: int) -> bytes:
        return f"{self.prefix}/queue/{group}/{offset:020d}".encode()

    def classify(self, key: bytes) -> tuple[str, str]:
        """("state" | "leader" | "events" | "rids" | "checkpoints" | "queue" | "other",
        suffix)."""
        text = key.decode(errors="replace")
        if not text.startswith(self.prefix + "/"):
            return "other", text
        rest = text[len(self.prefix) + 1:]
        if rest in ("state", "leader"):
            return rest, ""
        kind, _, suffix = rest.partition("/")
        if kind in ("events", "rids", "checkpoints", "queue") and suffix:
            return kind, suffix
        return "other", rest


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


def core_of(state: ClusterState) -> dict[str, Any]:
    """What `<prefix>/state` holds: the state without its events, checkpoints and
    queued messages (a queue keeps only its next offset here)."""
    d = state_to_dict(replace(
        state, events=(), checkpoints={},
        queues={g: GroupQueue(next_offset=q.next_offset) for g, q in state.queues.items()}))
    d.pop("events", None)
    d.pop("checkpoints", None)
    return d


def _data_ops(keys: Keys, before: ClusterState, after: ClusterState,
              puts: dict[bytes, bytes], deletes: list[bytes]) -> None:
    """Checkpoint and queue-message keys that changed (the state is immutable and
    commands replace only what they change, so identity says what to compare)."""
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


def _event_dict(e: Event) -> dict[str, Any]:
    return {"seq": e.seq, "at": e.at, "kind": e.kind, "group": e.group, "member": e.member,
            "node": e.node, "epoch": e.epoch, "reason": e.reason}


@dataclass(frozen=True)
class WriteOps:
    puts: dict[bytes, bytes]
    deletes: tuple[bytes, ...]


def write_ops(keys: Keys, before: ClusterState, after: ClusterState,
              rid: str | None, result: Result | None,
              evict: tuple[str, ...] = ()) -> WriteOps:
    """The keys one command changes: the state (always: it orders every write), the
    event blocks that gained or lost events, the new request id and evicted ones."""
    puts: dict[bytes, bytes] = {keys.state: encode(core_of(after))}
    deletes: list[bytes] = []
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


@dataclass
class LeaderRecord:
    node: str
    lease: int
    create_revision: int


@dataclass
class Mirror:
    """The vnfha keys as this process last read them, at etcd revision `revision`.

    Not thread-safe: the store guards it with its lock. `state` is rebuilt lazily
    after a change and is an immutable ClusterState, safe to hand out."""

    keys: Keys
    revision: int = 0
    #: mod revision of the state key (0: absent); every write compares it
    state_revision: int = 0
    core: dict[str, Any] | None = None
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

    def load(self, kvs: list[tuple[bytes, bytes, int, int, int]], revision: int) -> None:
        """Replace everything with a full read: (key, value, create_rev, mod_rev, lease)."""
        self.core = None
        self.blocks = {}
        self.rids = {}
        self.checkpoints = {}
        self.messages = {}
        self.leader = None
        self.unreadable = []
        self.state_revision = 0
        rid_rows = []
        for key, value, create_rev, mod_rev, lease in kvs:
            kind, suffix = self.keys.classify(key)
            if kind == "state":
                self.state_revision = mod_rev
            if kind == "rids":
                rid_rows.append((create_rev, suffix, value))
            else:
                self._put(kind, suffix, value, create_rev, lease)
        for _, rid, value in sorted(rid_rows):
            self.rids[rid] = json.loads(value)
        self.revision = revision
        self.leader_revision = revision
        self._state = None

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
        if kind == "state":
            self.state_revision = mod_rev if put else 0
        if put:
            self._put(kind, suffix, value, create_rev, lease)
        elif kind == "rids":
            self.rids.pop(suffix, None)
        elif kind == "events":
            self.blocks.pop(int(suffix), None)
        elif kind == "checkpoints":
            self.checkpoints.pop(suffix, None)
        elif kind == "queue":
            group, _, offset = suffix.rpartition("/")
            with contextlib.suppress(ValueError):
                self.messages.get(group, {}).pop(int(offset), None)
        elif kind == "state":
            self.core = None
        self._state = None
        return kind in ("state", "events", "checkpoints", "queue")

    def advance(self, revision: int) -> None:
        """Every data event up to `revision` is in (watch responses end at a revision)."""
        self.revision = max(self.revision, revision)

    def adopt(self, revision: int, ops: WriteOps, after: ClusterState, rid: str | None,
              result: Result | None, evicted: tuple[str, ...]) -> None:
        """Our own transaction committed at `revision`: nothing else wrote data between
        the state we read and it (every write compares the state key's mod revision),
        so the mirror is what we computed. A full read that already includes it wins."""
        if revision <= self.revision:
            return
        self.state_revision = revision
        self.core = core_of(after)
        for key in ops.deletes:
            kind, suffix = self.keys.classify(key)
            if kind == "events":
                self.blocks.pop(int(suffix), None)
        for key in ops.puts:
            kind, suffix = self.keys.classify(key)
            if kind == "events":
                block = int(suffix)
                self.blocks[block] = tuple(e for e in after.events
                                           if e.seq // EVENTS_PER_BLOCK == block)
        self.checkpoints = dict(after.checkpoints)
        self.messages = {g: {m.offset: m for m in q.messages} for g, q in after.queues.items()}
        for r in evicted:
            self.rids.pop(r, None)
        if rid is not None and result is not None:
            self.rids[rid] = result
        self.revision = max(self.revision, revision)
        self._state = after

    def _put(self, kind: str, suffix: str, value: bytes, create_rev: int, lease: int) -> None:
        try:
            if kind == "state":
                self.core = json.loads(value)
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
        except (ValueError, TypeError, KeyError) as e:
            self.unreadable.append(f"{kind}/{suffix}: {e}")

    @property
    def state(self) -> ClusterState:
        if self._state is None:
            base = state_from_dict(self.core) if self.core else ClusterState()
            events = tuple(e for b in sorted(self.blocks) for e in self.blocks[b])
            queues = {}
            for g, meta in base.queues.items():  # the core has each queue's next offset
                msgs = tuple(m for _, m in sorted(self.messages.get(g, {}).items()))
                queues[g] = GroupQueue(messages=msgs, next_offset=meta.next_offset,
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
