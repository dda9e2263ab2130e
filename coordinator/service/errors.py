"""One mapping from store outcomes to gRPC status codes, used by every servicer, and
the guard that turns anything unexpected into INTERNAL (never UNKNOWN with a Python
exception name: that tells a caller about our code and nothing about their request)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc

from vnfha.coordinator import names
from vnfha.coordinator.security.authz import current_identity
from vnfha.coordinator.store.base import OutcomeUnknown, Store, StoreUnavailable

log = logging.getLogger("vnfha.api")

T = TypeVar("T")

_CODES = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "unknown_group": grpc.StatusCode.NOT_FOUND,
    "unknown_member": grpc.StatusCode.NOT_FOUND,
    "unknown_node": grpc.StatusCode.NOT_FOUND,
    "not_eligible": grpc.StatusCode.FAILED_PRECONDITION,
    "conflict": grpc.StatusCode.FAILED_PRECONDITION,
    "stale_epoch": grpc.StatusCode.FAILED_PRECONDITION,
    "request_id_reused": grpc.StatusCode.FAILED_PRECONDITION,
    "too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
}

INTERNAL_MESSAGE = "internal error in the coordinator; it is logged there"


async def require(context: grpc.aio.ServicerContext, check: Callable[[], T]) -> T:
    """Run a `names.check_*` call; a refused value ends the call with INVALID_ARGUMENT and
    the checker's message (which shows the value escaped and bounded)."""
    try:
        return check()
    except names.InvalidValue as e:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))


async def request_id(context: grpc.aio.ServicerContext, value: str) -> str | None:
    """A client's request id, checked (None when empty: the builder makes one)."""
    if not value:
        return None
    return await require(context, lambda: names.check_request_id(value))


async def require_count(context: grpc.aio.ServicerContext, what: str, count: int,
                        limit: int) -> None:
    """Lists longer than a documented limit are RESOURCE_EXHAUSTED (a size, not a shape)."""
    if count > limit:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"too many {what} ({count} > {limit})")


def _is_rpc_end(exc: BaseException) -> bool:
    # context.abort raises AbortError after setting the status: the call ended as meant.
    return isinstance(exc, (asyncio.CancelledError, grpc.aio.AbortError))


def _internal(method: str, exc: Exception) -> None:
    log.error("unexpected error in an RPC", exc_info=exc,
              extra={"rpc": method, "error": type(exc).__name__})


def guarded(cls: type[T]) -> type[T]:
    """Class decorator for a servicer: every RPC method (capitalised, as gRPC names them)
    logs an unexpected exception once, with its traceback, and ends the call with
    INTERNAL and a generic message. Aborts and cancellations pass through."""
    for attr, fn in list(vars(cls).items()):
        if not attr[:1].isupper() or not callable(fn):
            continue
        setattr(cls, attr, _guard_method(f"{cls.__name__}.{attr}", fn))
    return cls


def _guard_method(method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                async for item in fn(self, request, context):
                    yield item
            except Exception as e:  # the point of the guard
                if _is_rpc_end(e):
                    raise
                _internal(method, e)
                await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        return stream

    @functools.wraps(fn)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except Exception as e:  # the point of the guard
            if _is_rpc_end(e):
                raise
            _internal(method, e)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
    return unary


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


async def gate_read(store: Store, context: grpc.aio.ServicerContext) -> None:
    """End a read with UNAVAILABLE while this node may serve older state than it did
    before a restart (Store.read_gate): clients retry or ask another coordinator,
    and never see an epoch go backwards."""
    reason = store.read_gate()
    if reason is not None:
        await context.abort(grpc.StatusCode.UNAVAILABLE,
                            f"{reason}; retry or ask another coordinator")
