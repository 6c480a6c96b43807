"""The one place that wires routes, providers, formats and protocols together.

:class:`Gateway` is the HTTP handler: it routes each request, validates generation
requests, resolves the model to a chain of provider targets and starts a
:class:`~sseserver.relay.Relay` per stream. It also keeps the counters behind
``/metrics`` and the draining flag behind ``/readyz``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from importlib import resources

from sseserver.aio.http_server import HTTPConnection, HTTPRequest
from sseserver.aio.pool import ConnectionPool
from sseserver.aio.upstream import Timeouts
from sseserver.config import Config
from sseserver.errors import RequestError
from sseserver.formats.sse import SSEFormatter
from sseserver.output import DirectOutput
from sseserver.providers.base import Provider
from sseserver.relay import Relay, RelayPolicy, Target
from sseserver.schema import GenerationRequest, parse_generation_request

logger = logging.getLogger("sseserver.gateway")

Route = Callable[[HTTPRequest, HTTPConnection], None]


class Gateway:
    def __init__(self, config: Config, providers: Mapping[str, Provider]) -> None:
        self.config = config
        self.providers = dict(providers)
        self.draining = False
        self.relays: set[Relay] = set()
        self.counters: dict[str, int] = {
            "requests": 0, "streams_started": 0, "streams_ok": 0, "streams_error": 0,
            "streams_cancelled": 0, "stream_events": 0, "http_errors": 0,
        }
        streams, upstream = config.streams, config.upstream
        self.policy = RelayPolicy(
            heartbeat_interval=streams.heartbeat_interval,
            max_retries=upstream.max_retries,
            backoff_initial=upstream.backoff_initial,
            backoff_max=upstream.backoff_max,
            timeouts=Timeouts(
                connect=upstream.connect_timeout, first_byte=upstream.first_byte_timeout,
                idle=upstream.idle_timeout,
                total=min(upstream.total_timeout, streams.max_stream_duration)),
        )
        self.pool = ConnectionPool(self.policy.timeouts, upstream.max_connections_per_origin,
                                   upstream.pool_idle_timeout)
        self._routes: dict[str, dict[str, Route]] = {
            "/v1/stream": {"POST": self._post_stream},
            "/healthz": {"GET": self._healthz},
            "/readyz": {"GET": self._readyz},
            "/metrics": {"GET": self._metrics},
            "/": {"GET": self._index},
        }

    def __repr__(self) -> str:
        return (f"<Gateway providers={sorted(self.providers)} active={len(self.relays)} "
                f"draining={self.draining} pool={self.pool!r}>")

    # -- the HTTP handler ----------------------------------------------------------

    def handle(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        self.counters["requests"] += 1
        methods = self._routes.get(request.path)
        if methods is None:
            self.error(conn, 404, f"no route for {request.path}")
            return
        route = methods.get(request.method)
        if route is None:
            allow = ", ".join(sorted(methods))
            self.error(conn, 405, f"method {request.method} not allowed on {request.path}",
                       [("allow", allow)])
            return
        try:
            route(request, conn)
        except RequestError as exc:
            self.error(conn, exc.status, str(exc), error_type=exc.error_type)

    def on_protocol_error(self, conn: HTTPConnection, status: int, message: str) -> None:
        self.counters["http_errors"] += 1
        logger.debug("protocol error from %s: %d %s", conn.peer, status, message)

    def error(self, conn: HTTPConnection, status: int, message: str,
              headers: list[tuple[str, str]] | None = None, *,
              error_type: str | None = None) -> None:
        self.counters["http_errors"] += 1
        conn.respond_json(status, {"error": {
            "type": error_type or _ERROR_TYPES.get(status, "error"), "message": message}},
            headers)

    # -- routes --------------------------------------------------------------------

    def _post_stream(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        if self.draining:
            self.error(conn, 503, "server is draining", [("retry-after", "5")],
                       error_type="unavailable")
            return
        if len(self.relays) >= self.config.server.max_connections:
            self.error(conn, 503, "server is at capacity", [("retry-after", "1")],
                       error_type="unavailable")
            return
        generation = parse_generation_request(request.body)
        if generation.format != "sse":
            raise RequestError(f"format {generation.format!r} is not available yet")
        route = self.resolve(generation)
        relay = Relay(DirectOutput(conn, []), generation, route,
                      SSEFormatter(self.config.streams.retry_ms), self.policy, self.pool,
                      on_end=self._relay_ended)
        self.relays.add(relay)
        self.counters["streams_started"] += 1
        relay.start()

    def _relay_ended(self, relay: Relay) -> None:
        self.relays.discard(relay)
        self.counters["stream_events"] += relay.events
        key = {"ok": "streams_ok", "cancelled": "streams_cancelled"}.get(
            relay.status, "streams_error")
        self.counters[key] += 1

    def _healthz(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond_json(200, {"status": "ok"})

    def _readyz(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        if self.draining:
            conn.respond_json(503, {"status": "draining"}, [("retry-after", "5")])
        else:
            conn.respond_json(200, {"status": "ready", "streams": len(self.relays)})

    def _metrics(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond(200, [("content-type", "text/plain; version=0.0.4")],
                     self.metrics_text().encode())

    def _index(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond(200, [("content-type", "text/html; charset=utf-8"),
                           ("cache-control", "no-cache")], _demo_page())

    def metrics_text(self) -> str:
        c = self.counters
        lines = [
            "# HELP sseserver_streams_active Streams in progress.",
            "# TYPE sseserver_streams_active gauge",
            f"sseserver_streams_active {len(self.relays)}",
            "# HELP sseserver_streams_total Streams ended, by status.",
            "# TYPE sseserver_streams_total counter",
            *(f'sseserver_streams_total{{status="{s}"}} {c["streams_" + s]}'
              for s in ("ok", "error", "cancelled")),
            "# HELP sseserver_stream_events_total Events sent on ended streams.",
            "# TYPE sseserver_stream_events_total counter",
            f"sseserver_stream_events_total {c['stream_events']}",
            "# HELP sseserver_http_requests_total HTTP requests routed.",
            "# TYPE sseserver_http_requests_total counter",
            f"sseserver_http_requests_total {c['requests']}",
            "# HELP sseserver_http_errors_total Requests answered with an error status.",
            "# TYPE sseserver_http_errors_total counter",
            f"sseserver_http_errors_total {c['http_errors']}",
            "# HELP sseserver_draining 1 while the server drains.",
            "# TYPE sseserver_draining gauge",
            f"sseserver_draining {int(self.draining)}",
        ]
        return "\n".join(lines) + "\n"

    # -- model routing -------------------------------------------------------------

    def resolve(self, request: GenerationRequest) -> list[Target]:
        """The provider targets for a request, in fallback order.

        Raises :class:`RequestError` (400) for an unknown provider or model route.
        """
        if request.provider is not None:
            return [Target(self._provider(request.provider), request.model)]
        routing = self.config.routing
        chain = dict(routing.fallbacks).get(request.model)
        if chain:
            return [self._target(spec) for spec in chain]
        alias = dict(routing.aliases).get(request.model)
        if alias:
            return [self._target(alias)]
        name, _, model = request.model.partition("/")
        if model and name in self.providers:
            return [Target(self.providers[name], model)]
        default = routing.default_provider or next(iter(self.providers), None)
        if default is None:
            raise RequestError("no provider is configured", status=503,
                               error_type="unavailable")
        return [Target(self._provider(default), request.model)]

    def _target(self, spec: str) -> Target:
        name, _, model = spec.partition("/")
        return Target(self._provider(name), model)

    def _provider(self, name: str) -> Provider:
        provider = self.providers.get(name)
        if provider is None:
            raise RequestError(f"unknown provider {name!r}; configured: "
                               f"{', '.join(sorted(self.providers)) or 'none'}")
        return provider


@functools.cache
def _demo_page() -> bytes:
    return resources.files("sseserver.static").joinpath("index.html").read_bytes()


_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error", 404: "not_found_error", 405: "method_not_allowed",
    413: "request_too_large", 429: "rate_limit_error", 503: "unavailable",
}

