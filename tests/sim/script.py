"""Golden scenario files for the simulator: a directive, `----`, what it produced.

A file is a sequence of blocks; `#` lines before a block are comments and kept::

    # the active's VM is cut off with one coordinator
    partition c1,n1 | c2,c3,n2
    ----
      3.000 partition c1,n1 | c2,c3,n2

Every block's output is the trace of significant events (elections, commits,
confirmed expiries, claims and releases, faults) the directive caused, one line per
event with the real time; `ok` if there was none. `run_file` re-runs a file and
returns the text it should contain; the test compares, and rewrites the file when
VNFHA_SIM_REWRITE=1 (tests/sim/README.md).

Directives:
  world coordinators=c1,c2,c3 agents=n1:g/a/100,n2:g/b/90 [lists=n1:c1+c2] [seed=N]
        [rates=c1:1.004,n1:0.996] [leader=c1] [failsafe=LEASE_SECONDS]
  run for=SECONDS | run until=SECONDS
  partition A,B | C,D,E        heal [A,B | C]
  pause P    resume P    crash P    restart P
  hold from=P to=Q kind=keepalive|ack|watch [count=N]      deliver-held
  switchover GROUP to=MEMBER   grow c4,c5    unhealthy NODE GROUP/MEMBER
  status                       (per group: the leader's replica and the live holders)
  ages NODE                    (how long each coordinator has not heard NODE)
"""

from __future__ import annotations

from vnfha.coordinator import commands as C

from .world import World


class ScriptError(ValueError):
    pass


def _kv(args: list[str]) -> dict[str, str]:
    out = {}
    for a in args:
        if "=" not in a:
            raise ScriptError(f"expected key=value, got {a!r}")
        k, v = a.split("=", 1)
        out[k] = v
    return out


def _world(args: list[str]) -> World:
    kv = _kv(args)
    coords = kv["coordinators"].split(",")
    agents: dict[str, list[tuple[str, str, int]]] = {}
    for spec in kv["agents"].split(","):
        node, member = spec.split(":")
        g, m, prio = member.split("/")
        agents.setdefault(node, []).append((g, m, int(prio)))
    lists = {}
    for spec in filter(None, kv.get("lists", "").split(",")):
        node, ids = spec.split(":")
        lists[node] = ids.split("+")
    rates = {}
    for spec in filter(None, kv.get("rates", "").split(",")):
        name, rate = spec.split(":")
        rates[name] = float(rate)
    # Scenario clocks run at exactly 1 unless given: a golden file reads in plain time.
    for name in [*coords, *agents]:
        rates.setdefault(name, 1.0)
    return World(int(kv.get("seed", "1")), coords, agents, lists, rates=rates,
                 first_leader=kv.get("leader"), failsafe=float(kv.get("failsafe", "0")))


def _sides(args: list[str]) -> list[list[str]]:
    """`a,b | c,d` -> [["a", "b"], ["c", "d"]]."""
    return [side.strip().split(",") for side in " ".join(args).split("|")]


def _do(w: World, line: str) -> None:
    words = line.split()
    cmd, args = words[0], words[1:]
    if cmd == "run":
        kv = _kv(args)
        if "for" in kv:
            w.run_for(float(kv["for"]))
        else:
            w.run_until(float(kv["until"]))
    elif cmd == "partition":
        w.partition(_sides(args))
    elif cmd == "heal":  # `heal a,b | c`: only the links between those sides
        w.heal(_sides(args) if args else None)
    elif cmd in ("pause", "resume", "crash", "restart"):
        getattr(w, cmd)(args[0])
    elif cmd == "hold":
        kv = _kv(args)
        w.net.hold_rules[(kv["from"], kv["to"], kv["kind"])] = int(kv.get("count", "1"))
        w.note(f"net will hold {kv.get('count', '1')} {kv['kind']} {kv['from']}->{kv['to']}")
    elif cmd == "deliver-held":
        w.release_held()
    elif cmd == "switchover":
        to = _kv(args[1:]).get("to")
        w.note(f"operator: switchover {args[0]} to {to}")
        w.submit(C.switchover(args[0], to, rid=f"op-{w.t:.3f}", at=round(w.t, 3)))
    elif cmd == "grow":
        w.grow(args[0].split(","))
    elif cmd in ("unhealthy", "healthy"):
        group, member = args[1].split("/")
        w.agents[args[0]].set_health(group, member, cmd == "healthy")
    elif cmd not in ("status", "ages"):
        raise ScriptError(f"unknown directive {cmd!r}")


def run_file(text: str) -> tuple[str, list[str]]:
    """Run every block of `text`; the text with actual outputs, and any violations."""
    out: list[str] = []
    w: World | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            out.append(line)
            i += 1
            continue
        directive = line
        i += 1
        if i >= len(lines) or lines[i] != "----":
            raise ScriptError(f"line {i}: {directive!r} must be followed by ----")
        i += 1
        while i < len(lines) and lines[i].strip():  # the old output
            i += 1
        if directive.startswith("world"):
            w = _world(directive.split()[1:])
            result = ["ok"]
        else:
            if w is None:
                raise ScriptError("the first directive must be `world`")
            mark = len(w.trace)
            _do(w, directive)
            word = directive.split()[0]
            result = (w.summary() if word == "status"
                      else w.ages(directive.split()[1]) if word == "ages"
                      else w.trace[mark:] or ["ok"])
        out += [directive, "----", *result]
    violations = w.violations if w is not None else []
    return "\n".join(out) + "\n", violations

