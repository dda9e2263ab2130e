"""Server interceptors that apply the policy table to every call, and audit it.

They wrap the servicers' method handlers at registration time, so the servicers
stay unaware of identities: the caller is found from the TLS auth context, the
method's rule is looked up, the request (every message of a client stream) is
checked, and only then is the servicer called. The caller of the call being
served is available to the servicers' helpers through `current_identity`.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

from vnfha.coordinator.model import ClusterState
from vnfha.coordinator.security.identity import (
    INSECURE_IDENTITY,
    Identity,
    IdentityError,
    from_auth_context,
)
from vnfha.coordinator.security.policy import RULES, Decision, decide_call, decide_request

log = logging.getLogger("vnfha.authz")

#: the identity whose call is being served (set by the interceptors)
current_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "vnfha_identity", default=None)


def _no_state() -> ClusterState:
    return ClusterState()


class RefusalLog:
    """Logs refused calls at most once per `every` seconds per (identity, method), with
    how many were suppressed; a flood of refused calls cannot flood the log."""

    MAX_KEYS = 1024

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}
        self.refused = 0

    def note(self, who: str, method: str, code: str, reason: str) -> None:
        now = self._clock()
        with self._lock:
            self.refused += 1
            key = (who, method)
            last, suppressed = self._last.get(key, (-1e18, 0))
            if now - last < self._every:
                self._last[key] = (last, suppressed + 1)
                return
            if len(self._last) >= self.MAX_KEYS and key not in self._last:
                self._last.clear()
            self._last[key] = (now, 0)
        log.warning("call refused", extra={"identity": who, "method": method, "code": code,
                                           "reason": reason, "suppressed": suppressed})


class _Gate:
    """What both interceptors share: who is calling, and may they."""

    def __init__(self, tls: bool, state: Callable[[], ClusterState] | None,
                 refusals: RefusalLog | None) -> None:
        self.tls = tls
        self.state = state or _no_state
        self.refusals = refusals or RefusalLog()
        self.accepted = 0

    def identify(self, context: Any) -> Identity:
        return from_auth_context(context.auth_context(), context.peer(), self.tls)

    def refuse(self, who: str, method: str, code: grpc.StatusCode, reason: str
               ) -> tuple[grpc.StatusCode, str]:
        self.refusals.note(who, method, code.name, reason)
        return code, reason

    def check_call(self, method: str, context: Any) -> tuple[Identity | None,
                                                            tuple[grpc.StatusCode, str] | None]:
        try:
            identity = self.identify(context)
        except IdentityError as e:
            return None, self.refuse("?", method, grpc.StatusCode.UNAUTHENTICATED,
                                     f"unauthenticated: {e}")
        d = decide_call(method, identity)
        if not d.allowed:
            return identity, self.refuse(str(identity), method,
                                         grpc.StatusCode.PERMISSION_DENIED, d.reason)
        return identity, None

    def check_request(self, method: str, identity: Identity, request: Any
                      ) -> tuple[grpc.StatusCode, str] | None:
        d: Decision = decide_request(method, identity, request, self.state)
        if d.allowed:
            return None
        return self.refuse(str(identity), method, grpc.StatusCode.PERMISSION_DENIED, d.reason)

    def audit(self, method: str, identity: Identity) -> None:
        rule = RULES.get(method)
        if rule is not None and rule.mutates:
            self.accepted += 1
            # A client stream (keepalives) is logged once, when it opens; checkpoint and
            # queue writes (one per VNFC write) at DEBUG.
            log.log(logging.DEBUG if rule.data_plane else logging.INFO,
                    "stream accepted" if rule.per_message else "call accepted",
                    extra={"identity": str(identity), "method": method})


def _rebuild(handler: grpc.RpcMethodHandler, fn: Callable[..., Any]) -> grpc.RpcMethodHandler:
    kw = {"request_deserializer": handler.request_deserializer,
          "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(fn, **kw)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(fn, **kw)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(fn, **kw)
    return grpc.stream_stream_rpc_method_handler(fn, **kw)


class AioAuthorizer(grpc.aio.ServerInterceptor):
    """For grpc.aio servers (the coordinator)."""

    def __init__(self, tls: bool, state: Callable[[], ClusterState] | None = None,
                 refusals: RefusalLog | None = None) -> None:
        self.gate = _Gate(tls, state, refusals)
        # method -> (the servicer's handler, its wrapper): built once per method, not
        # per call (the server hands out the same handler object for a method).
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation: Callable[..., Any],
                                handler_call_details: grpc.HandlerCallDetails
                                ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        if method in RULES:  # only known methods: the cache cannot grow from the network
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        gate = self.gate

        async def admit(request: Any, context: grpc.aio.ServicerContext) -> Identity:
            identity, refusal = gate.check_call(method, context)
            if refusal is None and identity is not None and request is not None:
                refusal = gate.check_request(method, identity, request)
            if refusal is not None:
                await context.abort(*refusal)
            assert identity is not None
            current_identity.set(identity)
            gate.audit(method, identity)
            return identity

        async def checked(identity: Identity, requests: AsyncIterator[Any],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for req in requests:
                refusal = gate.check_request(method, identity, req)
                if refusal is not None:
                    await context.abort(*refusal)
                yield req

        async def run(behaviour: Callable[..., Any], arg: Any,
                      context: grpc.aio.ServicerContext) -> Any:
            out = behaviour(arg, context)
            return await out if inspect.isawaitable(out) else out

        if handler.unary_unary is not None:
            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await admit(request, context)
                return await run(handler.unary_unary, request, context)
            return _rebuild(handler, unary_unary)
        if handler.unary_stream is not None:
            async def unary_stream(request: Any, context: grpc.aio.ServicerContext
                                   ) -> AsyncIterator[Any]:
                await admit(request, context)
                out = handler.unary_stream(request, context)
                if inspect.isasyncgen(out):
                    async for item in out:
                        yield item
                else:  # a servicer that writes with context.write()
                    await out
            return _rebuild(handler, unary_stream)
        if handler.stream_unary is not None:
            async def stream_unary(requests: AsyncIterator[Any],
                                   context: grpc.aio.ServicerContext) -> Any:
                identity = await admit(None, context)
                return await run(handler.stream_unary, checked(identity, requests, context),
                                 context)
            return _rebuild(handler, stream_unary)

        async def stream_stream(requests: AsyncIterator[Any],
                                context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            identity = await admit(None, context)
            out = handler.stream_stream(checked(identity, requests, context), context)
            if inspect.isasyncgen(out):
                async for item in out:
                    yield item
            else:
                await out
        return _rebuild(handler, stream_stream)


class SyncAuthorizer(grpc.ServerInterceptor):
    """For thread-pool grpc servers (the state-sync receiver)."""

    def __init__(self, tls: bool, state: Callable[[], ClusterState] | None = None,
                 refusals: RefusalLog | None = None) -> None:
        self.gate = _Gate(tls, state, refusals)

    def intercept_service(self, continuation: Callable[..., Any],
                          handler_call_details: grpc.HandlerCallDetails
                          ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        gate = self.gate

        def admit(request: Any, context: grpc.ServicerContext) -> Identity:
            identity, refusal = gate.check_call(method, context)
            if refusal is None and identity is not None and request is not None:
                refusal = gate.check_request(method, identity, request)
            if refusal is not None:
                context.abort(*refusal)
            assert identity is not None
            gate.audit(method, identity)
            return identity

        def checked(identity: Identity, requests: Iterator[Any],
                    context: grpc.ServicerContext) -> Iterator[Any]:
            for req in requests:
                refusal = gate.check_request(method, identity, req)
                if refusal is not None:
                    context.abort(*refusal)
                yield req

        if handler.unary_unary is not None:
            def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
                admit(request, context)
                return handler.unary_unary(request, context)
            return _rebuild(handler, unary_unary)
        if handler.unary_stream is not None:
            def unary_stream(request: Any, context: grpc.ServicerContext) -> Any:
                admit(request, context)
                return handler.unary_stream(request, context)
            return _rebuild(handler, unary_stream)
        if handler.stream_unary is not None:
            def stream_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                identity = admit(None, context)
                return handler.stream_unary(checked(identity, requests, context), context)
            return _rebuild(handler, stream_unary)

        def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            identity = admit(None, context)
            return handler.stream_stream(checked(identity, requests, context), context)
        return _rebuild(handler, stream_stream)


__all__ = ["INSECURE_IDENTITY", "AioAuthorizer", "RefusalLog", "SyncAuthorizer",
           "current_identity"]
