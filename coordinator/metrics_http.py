"""The metrics/health HTTP listener of a coordinator or an agent (docs/metrics.md).

Three read-only paths: `/metrics` (Prometheus text format from the process's own
registry), `/livez` (the process's threads are running) and `/readyz` (the process
can do its job now: see `coordinator/metrics.py` and `agents/metrics.py`). Anything
else is 404, any method but GET/HEAD 405. Nothing a client sends is logged: a
request line is attacker-chosen text.

The server is `http.server` on its own thread: scrapes are rare (seconds apart), so
one thread per request is cheap, and nothing here touches the gRPC event loop.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from vnfha.coordinator.confparse import parse_address
from vnfha.coordinator.metrics_config import MetricsConfig

log = logging.getLogger("vnfha.metrics")

#: A health check: (ok, one line saying why). Must be quick and must not raise.
Check = Callable[[], tuple[bool, str]]


def tls_context(cfg: MetricsConfig) -> ssl.SSLContext | None:
    """The server-side TLS context for `cfg.tls`, None for plain HTTP (loopback only)."""
    if cfg.tls is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file))
    if cfg.tls.ca_file is not None:
        ctx.load_verify_locations(cafile=str(cfg.tls.ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Set by MetricsServer before serving.
    registry: CollectorRegistry
    live: Check
    ready: Check

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed TLS handshake or a dropped client: expected, not worth a traceback."""
        log.debug("metrics request failed", exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "vnfha"
    sys_version = ""
    timeout = 10  # a client that opens a connection and sends nothing is dropped

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                body = generate_latest(self.server.registry)
            except Exception:  # a collector bug must not take the listener down
                log.exception("metrics collection failed")
                self._send(500, b"metrics collection failed\n")
                return
            self._send(200, body, CONTENT_TYPE_LATEST)
        elif path in ("/livez", "/readyz"):
            check = self.server.live if path == "/livez" else self.server.ready
            try:
                ok, why = check()
            except Exception as e:  # report, never crash the handler
                ok, why = False, f"check failed: {type(e).__name__}"
            self._send(200 if ok else 503, (("ok" if ok else "not ok") + f": {why}\n").encode())
        else:
            self._send(404, b"not found: try /metrics, /livez or /readyz\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _method_not_allowed(self) -> None:
        self._send(405, b"only GET\n")

    do_POST = do_PUT = do_DELETE = do_PATCH = _method_not_allowed

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines come from the network (see module docstring)."""


class MetricsServer:
    """Serve `registry` and two checks on `cfg.listen`; `start` raises OSError when the
    address cannot be bound, so a typo fails the start instead of going unnoticed."""

    def __init__(self, cfg: MetricsConfig, registry: CollectorRegistry, live: Check,
                 ready: Check) -> None:
        assert cfg.listen is not None
        self.cfg = cfg
        self._registry = registry
        self._live = live
        self._ready = ready
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        assert self.cfg.listen is not None
        host, port = parse_address(self.cfg.listen)
        cls = _Server6 if ":" in host else _Server
        try:
            httpd = cls((host, port), _Handler)
        except OSError as e:
            raise OSError(f"metrics.listen {self.cfg.listen}: {e.strerror or e}") from e
        ctx = tls_context(self.cfg)
        if ctx is not None:
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True,
                                           do_handshake_on_connect=False)
        httpd.registry, httpd.live, httpd.ready = self._registry, self._live, self._ready
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="metrics-http", daemon=True)
        self._thread.start()
        log.info("metrics listener serving", extra={"listen": self.cfg.listen,
                                                     "tls": ctx is not None})

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=3)
        self._httpd = None
