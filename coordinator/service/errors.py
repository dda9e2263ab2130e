"""One mapping from store outcomes to gRPC status codes, used by every servicer."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import grpc

from vnfha.coordinator.security.authz import current_identity
from vnfha.coordinator.store.base import OutcomeUnknown, Store, StoreUnavailable

_CODES = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "unknown_group": grpc.StatusCode.NOT_FOUND,
    "unknown_member": grpc.StatusCode.NOT_FOUND,
    "unknown_node": grpc.StatusCode.NOT_FOUND,
    "not_eligible": grpc.StatusCode.FAILED_PRECONDITION,
    "conflict": grpc.StatusCode.FAILED_PRECONDITION,
    "stale_epoch": grpc.StatusCode.ABORTED,
}


async def abort_refused(context: grpc.aio.ServicerContext, result: dict[str, Any]) -> NoReturn:
    code = _CODES.get(result.get("error", ""), grpc.StatusCode.FAILED_PRECONDITION)
    await context.abort(code, result.get("message", "refused"))


async def submit_or_abort(store: Store, context: grpc.aio.ServicerContext,
                          command: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
    """Submit (off the event loop: it blocks until committed); on refusal or store
    trouble, end the call with a status that says why. The command carries the caller's
    identity (set by the authorization layer), so its events name who asked."""
    identity = current_identity.get()
    if identity is not None:
        command = {**command, "actor": str(identity)}
    try:
        result = await asyncio.to_thread(store.submit, command, timeout)
    except StoreUnavailable as e:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"store unavailable: {e}")
    except OutcomeUnknown as e:
        await context.abort(grpc.StatusCode.UNAVAILABLE,
                            f"outcome unknown ({e}); retry with the same request_id "
                            f"{command.get('rid')!r}")
    if not result.get("ok"):
        await abort_refused(context, result)
    return result
