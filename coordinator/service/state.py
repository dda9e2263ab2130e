"""StateService: the per-group replicated queue and checkpoint (state.proto).

Writes become `publish` / `put_checkpoint` commands; the fencing (current
epoch only) is decided in the replicated state machine (coordinator/state_data.py),
so every coordinator accepts them and the store forwards them to the leader.
Reads are served from this coordinator's applied state; `min_epoch` makes a
reader wait until that state includes its own promotion, and with it every
write of earlier epochs (they precede the promotion in the log).
"""

from __future__ import annotations

import asyncio
import logging
import time
from base64 import b64encode
from typing import Any, NoReturn

import grpc

from vnfha.coordinator import commands as C
from vnfha.coordinator import names
from vnfha.coordinator.config import StateConfig
from vnfha.coordinator.model import ClusterState
from vnfha.coordinator.service.errors import gate_read, guarded, request_id, require
from vnfha.coordinator.service.feed import ChangeFeed
from vnfha.coordinator.store.base import OutcomeUnknown, Store, StoreUnavailable
from vnfha.v1 import state_pb2, state_pb2_grpc

log = logging.getLogger("vnfha.state_api")

DEFAULT_READ = 100
MAX_READ = 1000
#: How long a read with min_epoch waits for this coordinator to catch up.
MIN_EPOCH_WAIT = 1.0
#: GetEpoch waits less: a forged epoch never arrives, and the caller has a sender waiting.
EPOCH_WAIT = 0.3

#: Trailing metadata keys on refusals.
ERROR_KEY = "vnfha-state-error"
EPOCH_KEY = "vnfha-state-epoch"

_CODES = {
    "stale_epoch": grpc.StatusCode.FAILED_PRECONDITION,
    "no_active": grpc.StatusCode.FAILED_PRECONDITION,
    "future_epoch": grpc.StatusCode.INVALID_ARGUMENT,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "unknown_group": grpc.StatusCode.NOT_FOUND,
    "too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "request_id_reused": grpc.StatusCode.FAILED_PRECONDITION,
}


@guarded
class StateServicer(state_pb2_grpc.StateServiceServicer):
    def __init__(self, store: Store, limits: StateConfig, feed: ChangeFeed,
                 coordinator_id: str = "") -> None:
        self._store = store
        self._limits = limits
        self._feed = feed
        self._id = coordinator_id
        self.refused: dict[str, int] = {}  # error code -> count, for tests and status

    # -- writes ------------------------------------------------------------------------------

    async def Publish(self, request: state_pb2.PublishRequest,
                      context: grpc.aio.ServicerContext) -> state_pb2.PublishResponse:
        await self._check_write(request.group, request.epoch, len(request.data),
                                self._limits.queue_max_message_bytes,
                                "state.queue_max_message_bytes", "message", context)
        lim = self._limits
        cmd = C.publish(request.group, request.epoch, b64encode(request.data).decode(),
                        max_message_bytes=lim.queue_max_message_bytes,
                        retain_messages=lim.queue_retain_messages,
                        retain_bytes=lim.queue_retain_bytes,
                        rid=await request_id(context, request.request_id))
        result = await self._submit(cmd, request.group, context)
        return state_pb2.PublishResponse(offset=result["offset"])

    async def PutCheckpoint(self, request: state_pb2.PutCheckpointRequest,
                            context: grpc.aio.ServicerContext
                            ) -> state_pb2.PutCheckpointResponse:
        await self._check_write(request.group, request.epoch, len(request.data),
                                self._limits.checkpoint_max_bytes,
                                "state.checkpoint_max_bytes", "checkpoint", context)
        cmd = C.put_checkpoint(request.group, request.epoch, b64encode(request.data).decode(),
                               sync_sequence=request.sync_sequence,
                               max_bytes=self._limits.checkpoint_max_bytes,
                               rid=await request_id(context, request.request_id))
        result = await self._submit(cmd, request.group, context)
        return state_pb2.PutCheckpointResponse(version=result["version"])

    async def _check_write(self, group: str, epoch: int, size: int, limit: int, setting: str,
                           what: str, context: grpc.aio.ServicerContext) -> None:
        """Refuse what is malformed or too big before it costs a Raft round."""
        if not names.is_name(group):
            await self._abort(context, "invalid", f"group name {names.quoted(group)} is "
                                                  f"invalid: it must be {names.NAME_RULE}", "")
        if epoch == 0:
            await self._abort(context, "invalid", "epoch is 0: writes must carry the writer's "
                                                  "epoch (fencing token)", group)
        if size > limit:
            await self._abort(context, "too_large", f"{what} is {size} bytes, the limit is "
                                                    f"{limit} ({setting})", group)

    async def _submit(self, cmd: dict[str, Any], group: str,
                      context: grpc.aio.ServicerContext) -> dict[str, Any]:
        try:
            result = await asyncio.to_thread(self._store.submit, cmd, 3.0)
        except StoreUnavailable as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"store unavailable: {e}")
        except OutcomeUnknown as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"outcome unknown ({e}); retry with the same request_id "
                                f"{cmd['rid']!r}")
        if not result.get("ok"):
            await self._abort(context, result.get("error", ""), result.get("message", ""), group)
        return result

    async def _abort(self, context: grpc.aio.ServicerContext, error: str, message: str,
                     group: str) -> NoReturn:
        self.refused[error] = self.refused.get(error, 0) + 1
        g = self._store.state().groups.get(group)
        context.set_trailing_metadata(((ERROR_KEY, error),
                                       (EPOCH_KEY, str(g.epoch if g else 0))))
        log.info("state write refused", extra={"group": group, "error": error,
                                               "detail": message, "coordinator": self._id})
        await context.abort(_CODES.get(error, grpc.StatusCode.FAILED_PRECONDITION),
                            f"{error}: {message}")

    # -- reads -------------------------------------------------------------------------------

    async def _state_at(self, group: str, min_epoch: int, context: grpc.aio.ServicerContext,
                        wait: float = MIN_EPOCH_WAIT, strict: bool = True) -> ClusterState:
        await require(context, lambda: names.check_name("group", group))
        await gate_read(self._store, context)
        deadline = time.monotonic() + wait
        while True:
            ticket = self._feed.ticket()
            state = self._store.state()
            g = state.groups.get(group)
            if g is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown group {group!r}")
            if g.epoch >= min_epoch:
                return state
            left = deadline - time.monotonic()
            if left <= 0 and not strict:
                return state
            if left <= 0:
                await context.abort(grpc.StatusCode.UNAVAILABLE,
                                    f"this coordinator has applied group {group!r} up to epoch "
                                    f"{g.epoch} only, not {min_epoch}: ask another or retry")
            await self._feed.wait(ticket, min(left, 0.05))

    async def Read(self, request: state_pb2.ReadRequest,
                   context: grpc.aio.ServicerContext) -> state_pb2.ReadResponse:
        state = await self._state_at(request.group, request.min_epoch, context)
        q = state.queues.get(request.group)
        if q is None:
            return state_pb2.ReadResponse()
        if request.from_offset and request.from_offset < q.first_offset:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE,
                                f"offset {request.from_offset} of group {request.group!r} is "
                                f"no longer retained; the oldest is {q.first_offset}")
        want = min(request.max_messages or DEFAULT_READ, MAX_READ)
        msgs = [m for m in q.messages if m.offset >= request.from_offset][:want]
        return state_pb2.ReadResponse(
            messages=[state_pb2.QueueMessage(offset=m.offset, epoch=m.epoch, data=m.data)
                      for m in msgs],
            next_offset=q.next_offset, first_offset=q.first_offset)

    async def GetCheckpoint(self, request: state_pb2.GetCheckpointRequest,
                            context: grpc.aio.ServicerContext
                            ) -> state_pb2.GetCheckpointResponse:
        state = await self._state_at(request.group, request.min_epoch, context)
        epoch = state.groups[request.group].epoch
        cp = state.checkpoints.get(request.group)
        if cp is None:
            return state_pb2.GetCheckpointResponse(found=False, group_epoch=epoch)
        return state_pb2.GetCheckpointResponse(
            found=True, group_epoch=epoch,
            checkpoint=state_pb2.Checkpoint(epoch=cp.epoch, version=cp.version, data=cp.data,
                                            sync_sequence=cp.sync_sequence))

    async def GetEpoch(self, request: state_pb2.GetEpochRequest,
                       context: grpc.aio.ServicerContext) -> state_pb2.GetEpochResponse:
        state = await self._state_at(request.group, request.min_epoch, context,
                                     wait=EPOCH_WAIT, strict=False)
        g = state.groups[request.group]
        m = g.members.get(g.active) if g.active else None
        return state_pb2.GetEpochResponse(epoch=g.epoch, active=g.active or "",
                                          active_node=m.node if m is not None else "")
