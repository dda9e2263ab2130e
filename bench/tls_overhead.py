"""What mTLS costs: keepalive throughput and role-change commit latency, three ways.

One run measures three modes back to back with the same setup: one coordinator
process (raft backend, single node, fsync on), N registered nodes, and a load
generator keeping a window of keepalives in flight per node:

* `grpc_plain`: a Keepalive stream per node, no TLS;
* `grpc_mtls`: the same with mTLS, each node its own channel and certificate (every
  stream is authorized as its node, message by message);
* `fastpath_mtls`: each node opens a fast-path key over its mTLS channel
  (OpenFastPath), then keepalives are AES-GCM datagrams over UDP (docs/design.md,
  "Keepalive fast path"). The load generator counts an answer by its header only
  (its own CPU is on another core and not measured).

Then two agent sessions share a group (on the fast path in the third mode) and the
active role is switched over K times; the latency of each Switchover (until the new
active is committed) is recorded. Per mode: keepalives answered per second, the
coordinator's CPU per keepalive and keepalives per second per coordinator core (one
over the other: what one core could take). Prints JSON with the three modes and the
ratios.

    .venv/bin/python bench/tls_overhead.py [--nodes 64] [--seconds 5] [--switchovers 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import yaml

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator import fastwire as W
from vnfha.coordinator.security.tls import TlsFiles, channel_credentials
from vnfha.v1 import admin_pb2, admin_pb2_grpc, agent_pb2, agent_pb2_grpc, types_pb2
from vnfha_lab.ports import free_port
from vnfha_lab.testpki import LabPki

TTL = 0.6
INTERVAL = 0.05
IDLE_S = 2.0


def _channel(target: str, tls: TlsFiles | None, aio: bool = False):
    mod = grpc.aio if aio else grpc
    if tls is None:
        return mod.insecure_channel(target)
    return mod.secure_channel(target, channel_credentials(tls))


def _client(endpoint: str, nodes: list[tuple[str, TlsFiles | None]], seconds: float,
            window: int, out: mp.Queue) -> None:
    """One channel (and with TLS one certificate) per node, as real agents have."""

    async def run() -> tuple[int, float]:
        # Connections (TLS handshakes) first, then the measured window: the handshake is
        # paid once per agent, the per-message cost on every keepalive.
        started = time.monotonic()
        stop_at = started + 30 + seconds
        counts = [0]
        connected = [0]
        window_open = asyncio.Event()
        measured: list[float] = []

        async def stream(node: str, tls: TlsFiles | None) -> None:
            channel = _channel(endpoint, tls, aio=True)
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            credits: asyncio.Queue[int] = asyncio.Queue()
            for _ in range(window):
                credits.put_nowait(1)
            report = agent_pb2.MemberReport(group="bench", member=f"m-{node}",
                                            health=types_pb2.HEALTH_HEALTHY)

            async def requests():
                seq = 0
                while time.monotonic() < stop_at:
                    await credits.get()
                    seq += 1
                    yield agent_pb2.KeepaliveRequest(node=node, seq=seq, members=[report])

            first = True
            async for resp in stub.Keepalive(requests()):
                if first:
                    first = False
                    connected[0] += 1
                    if connected[0] == len(nodes):
                        out.put("connected")  # the parent notes the coordinator's CPU
                        nonlocal stop_at
                        measured.append(time.monotonic())
                        stop_at = measured[0] + seconds
                        window_open.set()
                if resp.result == agent_pb2.KEEPALIVE_RESULT_ACK and window_open.is_set():
                    counts[0] += 1
                credits.put_nowait(1)
            await channel.close()

        await asyncio.gather(*(stream(n, t) for n, t in nodes))
        return counts[0], time.monotonic() - (measured[0] if measured else started)

    out.put(asyncio.run(run()))


def _udp_client(endpoint: str, nodes: list[tuple[str, TlsFiles | None]], seconds: float,
                window: int, out: mp.Queue) -> None:
    """Fast path load: keys over each node's own mTLS channel, then datagrams."""
    host = endpoint.rsplit(":", 1)[0]
    sessions: dict[bytes, list] = {}  # key id -> [node, SessionKey, counter]
    port = 0
    for node, tls in nodes:
        with _channel(endpoint, tls) as ch:
            r = agent_pb2_grpc.AgentServiceStub(ch).OpenFastPath(
                agent_pb2.OpenFastPathRequest(node=node), timeout=30)
        report = agent_pb2.MemberReport(group="bench", member=f"m-{node}",
                                        health=types_pb2.HEALTH_HEALTHY)
        # One payload per node (the sequence number only matches answers to rounds,
        # which this generator does not need): the generator's CPU goes to sending.
        payload = agent_pb2.KeepaliveRequest(node=node, seq=1,
                                             members=[report]).SerializeToString()
        sessions[r.key_id] = [node, W.SessionKey(r.key_id, r.key), 0, payload]
        port = r.port
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setblocking(False)
    addr = (host, port)

    def send(s: list) -> None:
        s[2] += 1
        try:
            sock.sendto(s[1].seal(W.KIND_KEEPALIVE, s[2], s[3]), addr)
        except BlockingIOError:
            pass

    out.put("connected")
    start = time.monotonic()
    stop_at = start + seconds
    count = 0
    for s in sessions.values():
        for _ in range(window):
            send(s)
    while time.monotonic() < stop_at:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if not ready:  # datagrams lost (a full socket buffer): refill every window
            for s in sessions.values():
                for _ in range(window):
                    send(s)
            continue
        for _ in range(256):
            try:
                data = sock.recv(W.MAX_DATAGRAM + 1)
            except BlockingIOError:
                break
            try:
                header = W.parse_header(data, W.KIND_ACK)
            except W.Rejected:
                continue
            s = sessions.get(header.key_id)
            if s is not None:
                count += 1
                send(s)
    sock.close()
    out.put((count, time.monotonic() - start))


def _cpu_seconds(pid: int) -> float:
    """User+system CPU of a process (Linux /proc): per keepalive, this is the figure
    least disturbed by other work on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


MODES = {"grpc_plain": (False, False), "grpc_mtls": (True, False),
         "fastpath_mtls": (True, True)}  # name -> (tls, fast path)


def measure(mode: str, root: Path, pki: LabPki, args: argparse.Namespace,
            pin: list[str]) -> dict[str, object]:
    tls, fast = MODES[mode]
    root.mkdir()
    api = f"127.0.0.1:{free_port()}"
    cfg: dict[str, object] = {
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": api, "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "raft", "data_dir": str(root / "data")},
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 0.1},
        "groups": [{"name": "bench"}, {"name": "rc"}],
        "fastpath": {"enabled": fast},
        "logging": {"level": "warning"}}
    if tls:
        cfg["tls"] = pki.section("coordinator/c1")
    (root / "c1.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([*pin, sys.executable, "-m", "vnfha.coordinator.cli", "coordinator",
                             "--config", str(root / "c1.yaml")], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(root / "c1.log", "wb"))
    files = (lambda who: pki.files(who)) if tls else (lambda who: None)
    sessions: list[AgentSession] = []
    try:
        admin_ch = _channel(api, files("admin/bench"))
        grpc.channel_ready_future(admin_ch).result(timeout=60)
        admin = admin_pb2_grpc.AdminServiceStub(admin_ch)
        deadline = time.monotonic() + 15
        while not {"bench", "rc"} <= {g.name for g in admin.GetStatus(
                admin_pb2.GetStatusRequest()).groups}:
            if time.monotonic() > deadline:
                raise SystemExit("groups never applied")
            time.sleep(0.1)
        # What the coordinator burns with no node at all (Raft ticks, the decide loop,
        # health): subtracted in the *_net figure, the cost of the messages themselves.
        idle0 = _cpu_seconds(proc.pid)
        time.sleep(IDLE_S)
        idle_rate = (_cpu_seconds(proc.pid) - idle0) / IDLE_S
        nodes = [(f"n{i:04d}", files(f"node/n{i:04d}")) for i in range(args.nodes)]
        for name, f in nodes:
            with _channel(api, f) as ch:
                agent_pb2_grpc.AgentServiceStub(ch).RegisterNode(agent_pb2.RegisterNodeRequest(
                    node=name, members=[agent_pb2.MemberSpec(group="bench",
                                                             member=f"m-{name}")]), timeout=10)
        spawn = mp.get_context("spawn")  # no fork of a process that runs gRPC threads
        out: mp.Queue = spawn.Queue()
        loader = spawn.Process(target=_udp_client if fast else _client,
                               args=(api, nodes, args.seconds, args.window, out))
        loader.start()  # it times itself: start-up and TLS handshakes are not counted
        assert out.get(timeout=120) == "connected"
        cpu0 = _cpu_seconds(proc.pid)
        total, elapsed = out.get(timeout=args.seconds + 60)
        loader.join()
        cpu = _cpu_seconds(proc.pid) - cpu0

        # Role changes: two members of group rc on two agents; switch back and forth.
        for node, member, prio in (("ra", "rc-a", 200), ("rb", "rc-b", 100)):
            s = AgentSession(node, [HostedMember("rc", member, prio)], [api], ttl=TTL,
                             interval=INTERVAL, tls=files(f"node/{node}"), fastpath=fast)
            s.start()
            sessions.append(s)

        def group() -> admin_pb2.GroupStatus:
            st = admin.GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
            return next(g for g in st.groups if g.name == "rc")

        deadline = time.monotonic() + 15
        while not ((g := group()).active and len(g.members) == 2
                   and all(m.health == types_pb2.HEALTH_HEALTHY for m in g.members)):
            if time.monotonic() > deadline:
                raise SystemExit("group rc never got an active and a healthy standby")
            time.sleep(0.05)
        lat: list[float] = []
        for _ in range(args.switchovers):
            g = group()
            target = next(m.name for m in g.members if m.name != g.active)
            time.sleep(0.3)  # the new standby must be stable again before it can be chosen
            t = time.perf_counter()
            try:
                resp = admin.Switchover(admin_pb2.SwitchoverRequest(
                    group="rc", to_member=target, wait_ms=5000), timeout=10)
            except grpc.RpcError as e:  # a slow earlier switchover finished meanwhile
                if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                continue
            if resp.completed:
                lat.append((time.perf_counter() - t) * 1000)
        admin_ch.close()
        cpu_us = cpu / max(total, 1) * 1e6
        net_us = max(cpu - idle_rate * elapsed, 0.0) / max(total, 1) * 1e6
        return {"keepalives_acked_per_second": round(total / elapsed),
                "coordinator_cpu_us_per_keepalive": round(cpu_us, 1),
                "coordinator_cpu_us_per_keepalive_net": round(net_us, 1),
                "coordinator_idle_cpu_share": round(idle_rate, 3),
                "keepalives_per_coordinator_core_second": round(1e6 / cpu_us) if cpu_us else None,
                "switchovers_completed": len(lat),
                "switchover_ms_p50": round(statistics.median(lat), 2) if lat else None,
                "switchover_ms_p99": round(_pct(lat, 0.99), 2) if lat else None}
    finally:
        for s in sessions:
            s.stop()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--window", type=int, default=4, help="keepalives in flight per stream")
    ap.add_argument("--switchovers", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds of the three modes, alternating order; the best of each "
                         "mode is shown "
                         "(the machine may be shared)")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="do not pin coordinator and load generator to separate cores")
    args = ap.parse_args()
    args.seconds = min(args.seconds, 120.0)
    args.switchovers = min(args.switchovers, 500)
    pin = ["taskset", "-c", "0"] if args.pin and shutil.which("taskset") else []
    if pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
    root = Path(tempfile.mkdtemp(prefix="vnfha-tlsbench-"))
    names = list(MODES)
    runs: dict[str, list[dict[str, object]]] = {m: [] for m in names}
    try:
        pki = LabPki(root / "pki")
        for r in range(max(1, min(args.rounds, 10))):
            for mode in (names if r % 2 == 0 else names[::-1]):
                runs[mode].append(measure(mode, root / f"{mode}-{r}", pki, args, pin))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def best(rs: list[dict[str, object]]) -> dict[str, object]:
        top = dict(max(rs, key=lambda x: x["keepalives_acked_per_second"]))  # type: ignore[arg-type,return-value]
        cpu = [x["coordinator_cpu_us_per_keepalive"] for x in rs]
        top["coordinator_cpu_us_per_keepalive"] = min(cpu)  # type: ignore[type-var]
        top["coordinator_cpu_us_per_keepalive_net"] = min(
            x["coordinator_cpu_us_per_keepalive_net"] for x in rs)  # type: ignore[type-var]
        top["keepalives_per_coordinator_core_second"] = max(
            x["keepalives_per_coordinator_core_second"] or 0 for x in rs)  # type: ignore[type-var]
        p50 = [x["switchover_ms_p50"] for x in rs if x["switchover_ms_p50"] is not None]
        p99 = [x["switchover_ms_p99"] for x in rs if x["switchover_ms_p99"] is not None]
        top["switchover_ms_p50"] = min(p50) if p50 else None  # type: ignore[type-var]
        top["switchover_ms_p99"] = min(p99) if p99 else None  # type: ignore[type-var]
        top["keepalives_per_round"] = [x["keepalives_acked_per_second"] for x in rs]
        return top

    res = {m: best(runs[m]) for m in names}

    def ratio(a_mode: str, b_mode: str, key: str) -> float | None:
        a, b = res[a_mode].get(key), res[b_mode].get(key)
        return round(a / b, 3) if isinstance(a, (int, float)) and b else None

    print(json.dumps({
        "benchmark": "tls_overhead", "nodes": args.nodes, "seconds": args.seconds,
        "window": args.window, "cpus": os.cpu_count(), "pinned": bool(pin),
        **res,
        # The old comparison: what TLS costs on the gRPC stream.
        "grpc_mtls_over_grpc_plain": {
            "keepalive_throughput": ratio("grpc_mtls", "grpc_plain",
                                          "keepalives_acked_per_second"),
            "coordinator_cpu_per_keepalive": ratio("grpc_mtls", "grpc_plain",
                                                   "coordinator_cpu_us_per_keepalive"),
            "switchover_p50": ratio("grpc_mtls", "grpc_plain", "switchover_ms_p50"),
            "switchover_p99": ratio("grpc_mtls", "grpc_plain", "switchover_ms_p99")},
        # TLS on as deployed (keys over mTLS, keepalives on the fast path) against TLS
        # off: per coordinator core, and how much cheaper than the mTLS stream.
        "fastpath_mtls_over_grpc_plain": {
            "keepalives_per_coordinator_core": ratio(
                "fastpath_mtls", "grpc_plain", "keepalives_per_coordinator_core_second"),
            "keepalive_throughput": ratio("fastpath_mtls", "grpc_plain",
                                          "keepalives_acked_per_second"),
            "switchover_p50": ratio("fastpath_mtls", "grpc_plain", "switchover_ms_p50")},
        "grpc_mtls_cpu_over_fastpath_mtls_cpu": ratio(
            "grpc_mtls", "fastpath_mtls", "coordinator_cpu_us_per_keepalive"),
        "grpc_mtls_cpu_over_fastpath_mtls_cpu_net": ratio(
            "grpc_mtls", "fastpath_mtls", "coordinator_cpu_us_per_keepalive_net"),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
