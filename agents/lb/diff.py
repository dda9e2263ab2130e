"""Pure: HAProxy's server states vs. the pool -> the runtime-API changes to make.

Parses the output of `show servers state <backend>` (format version 1, as
HAProxy 2.x prints it) and decides, per member, which `set server <b>/<s>
state ready|drain|maint` brings the backend in step with the pool. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# srv_admin_state bits (HAProxy's SRV_ADMF_*): forced by the API vs. inherited,
# from the config, or from DNS resolution.
FMAINT = 0x01
IMAINT = 0x02
CMAINT = 0x04
FDRAIN = 0x08
IDRAIN = 0x10
RMAINT = 0x20
HMAINT = 0x40
# srv_op_state (SRV_ST_*)
OP_STOPPED, OP_STARTING, OP_RUNNING, OP_STOPPING = 0, 1, 2, 3


class ParseError(ValueError):
    """The socket answered something that is not a servers-state dump."""


@dataclass(frozen=True)
class ServerState:
    name: str
    op_state: int
    admin_state: int
    check_status: int = 0  # HAProxy's HCHK_STATUS_*; informational
    check_result: int = 0  # CHK_RES_*: 0 unknown, 1 neutral, 2 failed, 3 passed, 4 conditional

    @property
    def forced_maint(self) -> bool:
        return bool(self.admin_state & FMAINT)

    @property
    def forced_drain(self) -> bool:
        return bool(self.admin_state & FDRAIN)

    @property
    def up(self) -> bool:
        """HAProxy would send it traffic as far as its own checks go."""
        return self.op_state in (OP_RUNNING, OP_STARTING)

    def describe(self) -> str:
        op = {OP_STOPPED: "DOWN", OP_STARTING: "STARTING", OP_RUNNING: "UP",
              OP_STOPPING: "STOPPING"}.get(self.op_state, f"op {self.op_state}")
        admin = [n for n, bit in (("MAINT", FMAINT), ("IMAINT", IMAINT), ("CMAINT", CMAINT),
                                  ("DRAIN", FDRAIN), ("IDRAIN", IDRAIN), ("RMAINT", RMAINT),
                                  ("HMAINT", HMAINT)) if self.admin_state & bit]
        return "haproxy: " + op + ("" if not admin else " " + "+".join(admin))


def parse_servers_state(text: str, backend: str) -> dict[str, ServerState]:
    """Server name -> state, for one backend, from `show servers state <backend>`."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != "1":
        first = lines[0].strip() if lines else "(empty answer)"
        raise ParseError(f"not a servers-state dump (version line {first!r})")
    header: list[str] | None = None
    out: dict[str, ServerState] = {}
    for ln in lines[1:]:
        if ln.startswith("#"):
            header = ln.lstrip("# ").split()
            continue
        if header is None:
            raise ParseError("servers-state dump without a header line")
        row = dict(zip(header, ln.split(), strict=False))
        try:
            if row["be_name"] != backend:
                continue
            out[row["srv_name"]] = ServerState(
                name=row["srv_name"], op_state=int(row["srv_op_state"]),
                admin_state=int(row["srv_admin_state"]),
                check_status=int(row.get("srv_check_status", 0)),
                check_result=int(row.get("srv_check_result", 0)))
        except (KeyError, ValueError) as e:
            raise ParseError(f"bad servers-state line {ln!r}: {e}") from e
    return out


@dataclass(frozen=True)
class Change:
    member: str
    server: str
    state: str  # ready | drain | maint
    why: str


def plan(pool: Mapping[str, bool], servers: Mapping[str, ServerState],
         server_of: Mapping[str, str], excluded_state: str) -> tuple[list[Change], list[str]]:
    """The changes that make HAProxy match the pool, and members it has no server for.

    `pool`: member -> in service. `server_of`: member -> server name (members not
    in it use their own name). `excluded_state`: `maint` (cut at once) or `drain`
    (no new connections; HAProxy's own checks keep running, which LB-as-cluster-
    manager mode needs). Servers the pool does not mention are left alone.
    """
    changes: list[Change] = []
    missing: list[str] = []
    for member in sorted(pool):
        server = server_of.get(member, member)
        st = servers.get(server)
        if st is None:
            missing.append(member)
            continue
        if pool[member]:
            if st.forced_maint or st.forced_drain:
                changes.append(Change(member, server, "ready", "in service"))
        elif excluded_state == "maint":
            if not st.forced_maint:
                changes.append(Change(member, server, "maint", "excluded from the pool"))
        elif not st.forced_drain or st.forced_maint:
            changes.append(Change(member, server, "drain", "excluded from the pool"))
    return changes, missing
