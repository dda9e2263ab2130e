"""Which datagrams of one fast-path batch to try, and in what order (pure).

Why: a batch read after a stall holds several rounds of the same node. Only the newest
can help that node's agent: its lease is counted from the sending of the newest round
answered, and once a round is accepted the replay guard refuses every lower counter
(fastwire.ReplayGuard). Answered in arrival order, the older rounds spend the intake's
CPU (27-44 us an answer) on nothing and delay every node's fresh rounds behind them:
under the overload test's budget the pair's active was answered 0.5-2.2 s late at the
onset, before the meter said overloaded and shedding began (issue 14, docs/design.md
"Overload").

So a batch is grouped by the key id in each datagram's clear header, and each group is
ordered by the header's counter, highest first. The intake tries the first, and only
if it fails (a forgery, which anyone who saw the key id can send with any counter) the
next, so a forger cannot hide a node's real round; a replay of an older real round has
a lower counter and comes after it. Once one is accepted, the rest of its group is
superseded, unread beyond the header. Groups whose key `first` names (a node holding an
active role: a lapse there costs a failover) go before the others; otherwise groups
keep the order of their last datagram's arrival.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def newest_first(keys: Sequence[bytes], counters: Sequence[bytes],
                 first: Callable[[bytes], bool] | None = None) -> list[list[int]]:
    """The indexes of a batch (`keys` and `counters`: each datagram's key id and its
    counter as big-endian bytes, in arrival order) grouped by key id, each group by
    counter, highest first; the groups whose key `first` holds for come first, each part
    in the order of its groups' last arrival. Every index appears exactly once."""
    groups: dict[bytes, list[int]] = {}
    for i in range(len(keys) - 1, -1, -1):  # the dict keeps the order of last arrival
        group = groups.get(keys[i])
        if group is None:
            groups[keys[i]] = [i]
        else:
            group.append(i)
    ordered = list(groups.items())
    ordered.reverse()  # oldest last arrival first
    for _, group in ordered:
        if len(group) > 1:
            # Equal-length big-endian bytes compare as their numbers do; a stable sort
            # keeps equal counters (copies) newest first.
            group.sort(key=counters.__getitem__, reverse=True)
    if first is None:
        return [group for _, group in ordered]
    ahead = [first(key) for key, _ in ordered]
    return ([group for (_, group), a in zip(ordered, ahead, strict=True) if a]
            + [group for (_, group), a in zip(ordered, ahead, strict=True) if not a])
