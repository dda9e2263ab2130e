"""Graceful overload (issue 14): twice the keepalives a coordinator cluster can take,
for a minute, lapses no lease en masse and fails over no healthy active.

Three real coordinator processes (embedded Raft) on loopback; a real pair of agents
(AgentSession, on the keepalive fast path and at SCHED_FIFO 10 as deployed) runs group
`web`, judged as the window closes; a load generator in its own process speaks the real
agent protocol on the fast path (tests/integration/loadgen.py: RegisterNode, keys from
OpenFastPath, AES-GCM datagrams, WatchAssignments streams to every coordinator, a real
QuorumLease per node).

The capacity is set, not searched: once every load node is registered, the three
coordinators are put under a CPU budget (tests/integration/cpubudget.py, a cgroup
quota of BUDGET of one core between them: a coordinator VM starved by its neighbours),
so the keepalives they can take are a fraction of what the generator offers. The test
checks that it really offered at least twice their capacity, and that the coordinators
said they were overloaded. Capacity is what they could answer if they answered every
keepalive: the CPU the budget left their intake threads (the budget less what their
other threads used) over the intake's CPU per answer, timed under the budget
(`vnfha_fastpath_answer_cpu_seconds`). Not what they did answer: overloaded, they
shed on purpose, so "offered / acknowledged" (reported too) overstates the load; on
main, where it was the measure, it read 1.5-2.0x at a budget that offered 1.5-1.8x.
Offered is the nodes' rounds, 3,000 a second to each coordinator; an agent told it is
rationed sends that coordinator only the rounds it will answer (agents/fastpath.py), so
the intakes read fewer datagrams than that (reported: `under_budget`, answered +
rationed + stale a second, the three together). The assertions:
no mass lapse (at no moment more than 1 % of the nodes without a lease, judged when the
generator itself ran on time), fewer than 1 % of the members declared lost (from
when the budget is set) and of the groups failed over, the pair's active keeps its
role and epoch and its agent never stops acting, and a new node is refused with a
clear RESOURCE_EXHAUSTED while the coordinators are overloaded.

On main's code it fails: every node lapsed (ack p50 2.4 s), the pair's active lost
its lease, and the agents copied a third of their rounds onto the costlier gRPC
stream; half the nodes hold an active role, and the intake answered all of theirs,
however late. Skips, each with its reason: no cgroup CPU controller; the machine so
busy that the load's nodes do not register in time; the machine giving the
coordinators less than STARVED of their budget while they are overloaded (then the
other work on it, not the budget, set their capacity).
The same scenario on the gRPC Keepalive streams is a figure of bench/overload.py, not a
test: there arrivals are stamped when the event loop reads them, and a backlog waiting
in the transport still looks like silence (docs/design.md, Overload).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import loadgen
import pytest
import yaml
from cpubudget import CpuBudget, cpu_seconds
from support import free_port, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from cluster import CoordinatorCluster

from vnfha.agents import realtime
from vnfha.agents.session import AgentSession, HostedMember
from vnfha.v1 import admin_pb2, agent_pb2, agent_pb2_grpc

# A slower profile than the default (0.25 s / 0.06 s): on 2 cores shared with other
# test runs the machine's own scheduling stalls reach hundreds of milliseconds, and
# the test is about the coordinators' overload, not that noise.
TTL = 1.0
INTERVAL = 0.1
SECONDS = 60.0
NODES = 300  # 3,000 rounds a second: 9,000 datagrams to the three coordinators
# Of one core, for the three together. At 0.25 (before) they could answer ~1,700 of
# the 3,000 keepalives a second each was offered (37 us of intake CPU per answer, 0.07
# core for everything else): 1.8x, not 2x. At 0.2, ~1,200-1,300: 2.3-2.5x. On a quiet
# machine (2026-12-08: 20-24 us per answer) 0.2 gave only 1.5x, and 0.16 gave 2.1-3.0x
# (12 runs); on one busy with other runs 0.2 gave 2.3-3.8x. A budget calibrated from the
# first seconds under it (tried) came out further from its aim than this fixed one:
# what the coordinators' other threads take then swings with their elections.
BUDGET = 0.16
STARVED = 0.8  # overloaded but given less than this share of the budget: not ours to judge
WARMUP = 10.0  # from the last node started (and the budget set) to the measured window
REGISTER_LIMIT = 120.0  # seconds for every load node to register, before any budget
MASS = 0.01  # more than this share of nodes without a lease at one moment: a mass lapse

pytestmark = pytest.mark.slow


class Roles:
    """Role changes of the real pair, as their agents made them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changes: list[tuple[float, str, bool, int, str]] = []

    def cb(self, group: str, member: str, active: bool, epoch: int, why: str) -> None:
        with self.lock:
            self.changes.append((time.monotonic(), member, active, epoch, why))


def group(c: CoordinatorCluster, timeout: float = 1.0):
    """`web` as any running coordinator reports it (each asked within `timeout`)."""
    for cid in c.ids:
        try:
            st = c.status(cid, timeout=timeout)
        except grpc.RpcError:
            continue
        for g in st.groups:
            if g.name == "web":
                return g
    return None


def start_as_deployed(sessions: list[AgentSession]) -> None:
    """Start the pair's agents from a thread running SCHED_FIFO at the deployed agent's
    priority (10, above the coordinators' 5 and the generator's 1), so that their
    threads inherit it as a deployed agent's do (agents/main.py, agents/realtime.py).
    Started from the test's own ordinary thread they ran below the generator's 300
    simulated nodes, and the pair's active lapsed at moments when not one of those
    nodes did (the answers it read 0.3-1.0 s after its rounds). Where real-time
    scheduling is not permitted they run as ordinary threads, as `realtime: auto`."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(
                    realtime.RealtimeSettings().priority))
            for s in sessions:
                s.start()
        except BaseException as e:  # raised again on the caller's thread
            failed.append(e)

    t = threading.Thread(target=run, name="pair-start")
    t.start()
    t.join()
    if failed:
        raise failed[0]


def registered(c: CoordinatorCluster) -> int:
    """Members of the load's groups on a node, as the leader reports (0 if none answers)."""
    for cid in c.ids:
        try:
            st = c.status(cid, timeout=5)
        except grpc.RpcError:
            continue
        return sum(len(g.members) for g in st.groups if g.name.startswith("lg"))
    return 0


def declared_lost(c: CoordinatorCluster, since: float, until: float) -> list[str]:
    """Members the coordinators committed as lost between wall times `since` and
    `until`."""
    for cid in c.ids:
        try:
            ch, admin = c.admin(cid)
            with ch:
                events = admin.ListEvents(admin_pb2.ListEventsRequest(), timeout=10).events
        except grpc.RpcError:
            continue
        return [f"{e.group}/{e.member}" for e in events if e.kind == "health_changed"
                and "-> lost" in e.reason and since <= e.time.ToNanoseconds() / 1e9 < until]
    raise AssertionError("no coordinator answered ListEvents")


def refusal(c: CoordinatorCluster, limit: float) -> str | None:
    """Ask every coordinator in turn to register a new node (no members) until one
    refuses it as overloaded; its message, or None within `limit` seconds."""
    deadline = time.monotonic() + limit
    k = 0
    while time.monotonic() < deadline:
        cid = c.ids[k % len(c.ids)]
        k += 1
        with grpc.insecure_channel(c.api[cid]) as ch:
            try:
                agent_pb2_grpc.AgentServiceStub(ch).RegisterNode(
                    agent_pb2.RegisterNodeRequest(node=f"probe-{k}", address="198.18.1.2"),
                    timeout=5)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return f"{cid}: {e.details()}"
        time.sleep(0.5)
    return None


def overload_lines(c: CoordinatorCluster) -> dict[str, int]:
    """Per coordinator, its "coordinator overloaded" log lines (overload.watch)."""
    return {cid: (c.root / f"{cid}.log").read_text(errors="replace")
            .count('"coordinator overloaded') for cid in c.ids}


#: the coordinators' counters the scenario reads from /metrics, summed over coordinators
COUNTERS = {
    "answered": 'vnfha_fastpath_datagrams_total{result="answered"}',
    "rationed": 'vnfha_fastpath_datagrams_total{result="rationed"}',
    "stale": 'vnfha_fastpath_datagrams_total{result="stale"}',
    "intake_cpu_s": "vnfha_fastpath_intake_cpu_seconds_total",
    "handled": "vnfha_keepalive_ack_seconds_count",  # answered on either path
    "superseded": "vnfha_keepalives_superseded_total",  # the gRPC stream's rationing
}


def with_metrics(c: CoordinatorCluster) -> dict[str, str]:
    """Give every coordinator a metrics listener (its config, rewritten before it
    starts); their /metrics URLs."""
    urls = {}
    for cid, path in c.configs.items():
        cfg = yaml.safe_load(path.read_text())
        cfg["metrics"] = {"listen": f"127.0.0.1:{free_port()}"}
        path.write_text(yaml.safe_dump(cfg))
        urls[cid] = f"http://{cfg['metrics']['listen']}/metrics"
    return urls


def scrape(urls: dict[str, str]) -> dict[str, float]:
    """COUNTERS summed over the coordinators (one that does not answer counts 0), and
    `per_answer`: the mean of their `vnfha_fastpath_answer_cpu_seconds` (0: none)."""
    out = dict.fromkeys(COUNTERS, 0.0)
    per_answer = []
    for url in urls.values():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                lines = r.read().decode().splitlines()
        except OSError:
            continue
        values = {}
        for line in lines:
            name, _, value = line.rpartition(" ")
            values[name] = value
        for key, name in COUNTERS.items():
            out[key] += float(values.get(name, 0.0))
        if "vnfha_fastpath_answer_cpu_seconds" in values:
            per_answer.append(float(values["vnfha_fastpath_answer_cpu_seconds"]))
    out["per_answer"] = sum(per_answer) / len(per_answer) if per_answer else 0.0
    return out


def _generate(results: Any, proceed: Any, endpoints: list[str], nodes: int,
              seconds: float, transport: str) -> None:
    """The load generator's process: "added" on `results` once every node is registered
    and keyed, then its window's figures (or the error); its nodes keep sending until
    `proceed` is set (at most a minute more), so the scenario can lift the budget first.
    It runs real-time (SCHED_FIFO 1, below the coordinators' 5) where it may: the
    coordinators and other test runs' are real-time too, and a generator starved by them
    sends late and sees leases lapse that no coordinator let lapse."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))

    async def run() -> dict[str, Any]:
        lg = loadgen.LoadGen(endpoints, INTERVAL, TTL, max_nodes=nodes, transport=transport)
        try:
            await lg.add(nodes)
            results.put("added")
            await asyncio.sleep(WARMUP)
            lg.mark()
            await asyncio.sleep(seconds)
            window = lg.window()
            window["closed_wall"] = time.time()  # before the nodes stop (`finally`)
            results.put(window)
            await asyncio.get_running_loop().run_in_executor(None, proceed.wait, 60.0)
            return window
        finally:
            await lg.stop()

    try:
        asyncio.run(run())
    except Exception as e:  # reported by the waiting side as a failed run
        results.put({"error": repr(e)})


def scenario(root: Path, transport: str, nodes: int = NODES, budget: float = BUDGET,
             seconds: float = SECONDS) -> dict[str, Any]:
    """Register `nodes` load nodes, put the coordinators under `budget`, hold `seconds`;
    what happened (also bench/overload.py)."""
    c = CoordinatorCluster(root, ttl=TTL, interval=INTERVAL, tls=False, stabilization=1.0)
    urls = with_metrics(c)
    roles = Roles()
    pair = [AgentSession(node, [HostedMember("web", member, prio)], c.endpoints, ttl=TTL,
                         interval=INTERVAL, on_role=roles.cb)
            for node, member, prio in (("vm-a", "a", 200), ("vm-b", "b", 100))]
    cg: CpuBudget | None = None
    try:
        c.start_all()
        loadgen.create_groups(c.api[wait_for(c.leader, 20, what="a leader")], nodes)
        start_as_deployed(pair)
        before = wait_for(lambda: (g := group(c)) is not None and g.active == "a" and g,
                          30, what="member a active")
        wait_for(lambda: pair[0].active_members() == [("web", "a")], 10,
                 what="vm-a's agent acting as active")
        loaded_from = time.monotonic()
        ctx = mp.get_context("spawn")
        results: Any = ctx.Queue()
        proceed = ctx.Event()
        gen = ctx.Process(target=_generate, args=(results, proceed, c.endpoints, nodes,
                                                  seconds, transport), daemon=True)
        gen.start()
        try:
            # Registered (and keyed) at full speed; then the budget: capacity drops under
            # the load. A machine so busy that the coordinators are overloaded already
            # refuses the nodes (as designed): then there is nothing to measure.
            try:
                added = results.get(timeout=REGISTER_LIMIT)
            except queue.Empty:
                added = None
            if added != "added":
                return {"too_busy": f"{registered(c)} of {nodes} load nodes registered in "
                                    f"{REGISTER_LIMIT:.0f} s ({added}): the coordinators "
                                    f"were overloaded before any budget "
                                    f"({overload_lines(c)} overload log lines)"}
            pids = [p.pid for p in c.procs.values()]
            cg = CpuBudget(budget)
            for pid in pids:
                cg.add(pid)
            # Members lost before this are not the overload's: while the generator
            # registers its nodes in batches (up to 80 s on this machine) its newest
            # nodes can go unheard for the 6 s that expire a node that never reported
            # (44 such in one run, none after the budget was set).
            budget_wall = time.time()
            m2 = scrape(urls)
            cpu0, thr0, t0 = sum(map(cpu_seconds, pids)), cg.throttled_s(), time.monotonic()
            refused = refusal(c, 30)
            window = results.get(timeout=seconds + WARMUP + 30)
            closed = time.monotonic()
            after = group(c, timeout=5.0)  # still under the budget
            cpu = sum(map(cpu_seconds, pids)) - cpu0
            held = time.monotonic() - t0
            throttled = cg.throttled_s() - thr0
            m3 = scrape(urls)
            under = {k: m3[k] - m2[k] for k in COUNTERS}
            # The pair is judged as the window closes, before the load stops: the
            # generator's nodes then all go silent at once, 150 actives among them, and
            # a coordinator still under the budget would be judged on failing over a
            # whole rack, another test (one run's active lapsed 0.4 s after the window).
            with roles.lock:
                changes = [ch for ch in roles.changes if loaded_from <= ch[0] <= closed]
            cg.close()
            cg = None
        finally:
            proceed.set()  # the budget is lifted: the generator's nodes may stop
            gen.join(timeout=30)
            if gen.is_alive():
                gen.kill()
                gen.join(timeout=10)
        if "error" in window:
            return {"window": window}
        # Capacity: the keepalives the coordinators could answer per second under the
        # budget if they answered every one: the CPU the budget left their intakes (the
        # budget less what their other threads used) over the intake's CPU per answer,
        # timed under this budget (vnfha_fastpath_answer_cpu_seconds, sampled). Not the
        # answers they gave: overloaded, they shed on purpose.
        per_answer = m3["per_answer"]
        left = max(0.0, budget - (cpu - under["intake_cpu_s"]) / held)
        if per_answer <= 0 or under["answered"] < under["handled"] / 2:
            # not measured (coordinators before it), or mostly gRPC keepalives (the gRPC
            # transport: only the pair uses the fast path): their whole CPU per
            # keepalive handled, an upper bound of the cost
            per_answer = cpu / max(1.0, under["handled"])
            left = budget
        capacity = left / per_answer / len(c.ids) if per_answer > 0 else 0.0
        offered = window["offered_per_coordinator_per_s"]
        return {
            "transport": transport, "nodes": nodes, "budget_cores": budget,
            "coordinators_cpu_cores": round(cpu / held, 3),
            "throttled_s": round(throttled, 1), "held_s": round(held, 1),
            "cpu_us_per_answer": round(per_answer * 1e6, 1),
            "cores_left_to_intakes": round(left, 3),
            "capacity_per_coordinator_per_s": round(capacity),
            "offered_to_capacity": round(offered / max(1.0, capacity), 2),
            "under_budget": {k: round(v / held, 3 if k == "intake_cpu_s" else 0)
                             for k, v in under.items()},
            "offered_to_taken": round(offered
                                      / max(1, window["acked_per_coordinator_per_s"]), 2),
            "overload_log_lines": overload_lines(c), "new_node_refused": refused,
            # Until the window closed: the generator stops its nodes right after it,
            # and a TTL later the coordinators rightly call them lost (one run counted
            # all 300 load members, every one after the window).
            "declared_lost": declared_lost(c, budget_wall, window["closed_wall"]),
            "pair_before": (before.active, before.epoch),
            "pair_after": None if after is None else (after.active, after.epoch),
            "pair_role_changes": changes, "window": window,
        }
    finally:
        for s in pair:
            s.stop()
        c.stop_all()
        if cg is not None:
            cg.close()


@pytest.mark.xfail(strict=False, reason=(
    "issue 14: not yet seen passing. 2026-12-07 (overload3, machine at load average 8-27 "
    "from three other runs of 1,000-node real-time coordinators): with rationing on the "
    "fast path and answer_every_ms the agents' gRPC copies fell from 271,555 to 2,400-24,000 "
    "a minute and ack p99 from 4.4 s to 0.55-1.4 s, no load group failed over, at 2.4-2.8x "
    "the capacity (0.2 core); but the Raft cluster under the budget lost its quorum every "
    "~10 s ('no quorum: in contact with 1 of 3 raft voters'), and "
    "every node lapsed at some moment and the pair's active "
    "lost its lease (once: kept a@1; in other runs re-promoted or failed over). Raft "
    "starved by the intake is the next fix (its own process, issue 14 deliverable 1). "
    "2026-12-07 12:00-12:40: the intake in its own process (branch intakeproc, not "
    "merged) did not keep the quorum and answered fewer keepalives; the agent's re-keying "
    "under slow answers is fixed (5a954de), and Raft one priority above with a 0.5 ms GIL "
    "switch interval cut quorum losses by about 3x without ending them. Raft connections "
    "refused for a stale handshake key precede each loss (docs/design.md, Overload). "
    "13:00-13:40 (branch raftstarve): those refusals were request_vote sent before the "
    "key exchange, after the quiet follower-to-follower link was closed by its timeout "
    "at the first vote request; both fixed, and the tick thread reads before judging "
    "its election deadline and runs one priority up: 'no quorum' lines 19 -> 3-5 a run, "
    "not 0-1: the tick thread still waits seconds on the run queue or the GIL at times "
    "(docs/design.md, Overload). 15:50 (a budget per coordinator, an experiment): Raft "
    "kept its quorum and every node still lapsed, so Raft is not what lapses them. "
    "16:00-16:15: the agent's lease required a majority on one round, which rationing "
    "coordinators rarely answer in common; it now counts each coordinator's newest "
    "(9d27601): the median per second of nodes holding a lease went from 183-192 to "
    "214-300 of 300 (5 runs), but runs where the agents' gRPC copies pile up (30,000-"
    "68,000 a minute) still lapse every node at times, and the pair's active is "
    "re-promoted in every run. One copy per lease to a busy coordinator (tried, not "
    "merged) left 18,000-27,000 copies and the lapses as they were. 17:30-18:40: those "
    "copies went to coordinators that had said they ration, every round once the answer "
    "was overdue; now an agent sends a rationing coordinator only the rounds it answers, "
    "copies go one at a time, a late coordinator is not fallen back from, the ration "
    "counts arrivals, a new key keeps the old one until used, and GC freezes are spread: "
    "side by side (3 runs each) the median per second of nodes holding a lease went "
    "0/0/0 -> 119/298/298 and gRPC rounds 136k-266k -> 5k-28k a minute. Left: single "
    "seconds still dip (min 117-270 of 300), and the pair's real agent still lapses "
    "briefly in every run (rationed like a standby while the coordinator lags) and gets "
    "its role back 12-21 s later at a new epoch (docs/design.md, Overload). 20:40-21:40: "
    "the measurement fixed (lost members counted only in the window; the pair judged as "
    "the window closes and run as deployed, SCHED_FIFO 10); the budget gives 2.4-3.5x "
    "between runs; the pair's active still lapses in most runs 1-2 s after the budget is "
    "set, two coordinators answering 0.6-1.0 s late together (docs/design.md, Overload). "
    "2026-12-08 (15 runs): answers to the pair's active at the onset came 0.5-2.2 s late, "
    "some past the lease cover; an active's datagram older than a TTL is now dropped as "
    "stale (more answers a second on the same CPU), but at 2.3-3.7x the onset lapse "
    "remains in all but one run (docs/design.md, Overload). "
    "2026-12-08, a quiet machine (20-24 us an answer; budget now 0.16, 2.1-3.0x): passed "
    "8 of 12 runs, the first passes; later the pair's active lapsed at the onset in 6 of 6 "
    "(docs/design.md, Overload). "
    "Remove this mark once it passes"))
def test_twice_capacity_for_a_minute_lapses_no_lease_en_masse(tmp_path):
    try:
        CpuBudget(BUDGET).close()
    except OSError as e:
        pytest.skip(f"no CPU budget possible here (needs root and a cgroup cpu "
                    f"controller): {e}")
    r = scenario(tmp_path, "fast")
    if "too_busy" in r:
        pytest.skip(f"the shared machine is too busy to offer a known load: {r['too_busy']}")
    w = r["window"]
    assert "error" not in w, f"the load generator failed: {w}"
    report = {k: v for k, v in r.items() if k != "declared_lost"}
    print(report)
    # The load was twice what the coordinators could take, and they said so.
    assert w["nodes"] == NODES, report
    assert r["coordinators_cpu_cores"] <= 1.2 * BUDGET, f"the budget never bound: {report}"
    if r["coordinators_cpu_cores"] < STARVED * BUDGET:
        # Overloaded (below) yet not using their budget: the CPU went to other work on
        # the machine (other tests' real-time coordinators), so it, not the budget, set
        # their capacity, and what follows would judge the machine.
        assert all(n > 0 for n in r["overload_log_lines"].values()), report
        pytest.skip(f"the machine gave the coordinators {r['coordinators_cpu_cores']} of "
                    f"their {BUDGET} core budget: {report}")
    assert r["offered_to_capacity"] >= 2.0, f"not twice the capacity: {report}"
    assert all(n > 0 for n in r["overload_log_lines"].values()), \
        f"a coordinator never reported overload: {report}"
    assert r["new_node_refused"] is not None and "overloaded" in r["new_node_refused"], \
        report
    # What the coordinators decided: the pair's active keeps its role and epoch; the
    # load degrades one node at a time at most, never en masse.
    assert r["pair_after"] == r["pair_before"], report
    lost = r["declared_lost"]
    assert len(lost) < MASS * NODES, f"{len(lost)} members declared lost, e.g. {lost[:5]}"
    assert w["promotions"] < MASS * NODES / 2, f"failovers in the load's groups: {report}"
    # What the agents saw, judged only if the generator itself ran on time (its loop's
    # p99 lateness under TTL/10): a starved generator reads acknowledgements late and
    # sees leases lapse that no coordinator let lapse.
    if w["generator_lag_p99_ms"] > TTL / 10 * 1000:
        pytest.skip(f"decisions checked, leases not: the load generator's own loop ran "
                    f"{w['generator_lag_p99_ms']} ms late (p99): {report}")
    assert r["pair_role_changes"] == [], report
    assert w["min_nodes_with_lease"] >= (1 - MASS) * w["nodes"], report
