"""`vnfha agent --config FILE`: one per VM. Keeps its node alive, acts on roles."""

from __future__ import annotations

import logging
import signal
import threading

from vnfha.agents.config import AgentConfig
from vnfha.agents.hooks import HookRunner
from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator.logs import setup_logging

log = logging.getLogger("vnfha.agent")


def build_session(cfg: AgentConfig, hooks: HookRunner) -> AgentSession:
    notify = {(m.group, m.member): m.notify for m in cfg.members}

    def on_role(group: str, member: str, active: bool, epoch: int, why: str) -> None:
        role = "active" if active else "standby"
        log.info("role change", extra={"event": {"kind": "role_change", "node": cfg.node,
                                                 "group": group, "member": member,
                                                 "role": role, "epoch": epoch,
                                                 "reason": why}})
        hooks.submit(notify[(group, member)], role, epoch, group, member)

    return AgentSession(
        node=cfg.node, address=cfg.address,
        members=[HostedMember(m.group, m.member, m.priority) for m in cfg.members],
        endpoints=list(cfg.coordinators), ttl=cfg.lease.ttl,
        interval=cfg.lease.keepalive_interval, drift=cfg.lease.drift,
        margin=cfg.lease.margin, on_role=on_role)


def run(cfg: AgentConfig) -> int:
    setup_logging(cfg.log_level, cfg.log_format)
    hooks = HookRunner()
    session = build_session(cfg, hooks)
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping on signal", extra={"signal": signal.Signals(signum).name})
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        session.start()
    except RuntimeError as e:
        log.error("cannot start agent", extra={"node": cfg.node, "error": str(e)})
        return 1
    log.info("agent running", extra={"node": cfg.node, "coordinators": cfg.coordinators})
    done.wait()
    session.stop()  # releases every active role first
    hooks.stop()
    return 0
