"""The one place that wires routes, providers, formats and protocols together.

:class:`Gateway` is the HTTP handler: it routes each request, validates generation
requests, resolves the model to a chain of provider targets and starts a
:class:`~sseserver.relay.Relay` per stream. It also keeps the counters behind
``/metrics`` and the draining flag behind ``/readyz``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qs

from sseserver.aio.http_server import HTTPConnection, HTTPRequest
from sseserver.aio.pool import ConnectionPool
from sseserver.aio.upstream import Timeouts
from sseserver.config import Config
from sseserver.core.stream_log import StreamLog, parse_last_event_id
from sseserver.errors import RequestError
from sseserver.fanout import LogOutput
from sseserver.formats.sse import SSEFormatter
from sseserver.output import DirectOutput
from sseserver.providers.base import Provider
from sseserver.redact import Redactor
from sseserver.relay import Relay, RelayPolicy, RelayState, Target
from sseserver.schema import GenerationRequest, parse_generation_request
from sseserver.streams.memory import MemoryStore

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
            max_event_bytes=upstream.max_event_bytes,
            max_bytes_without_event=upstream.max_bytes_without_event,
            redact=Redactor(provider.api_key for provider in config.providers),
        )
        self.pool = ConnectionPool(self.policy.timeouts, upstream.max_connections_per_origin,
                                   upstream.pool_idle_timeout)
        self._routes: dict[str, dict[str, Route]] = {
            "/v1/stream": {"POST": self._post_stream},
            "/v1/streams": {"POST": self._post_streams},
            "/healthz": {"GET": self._healthz},
            "/readyz": {"GET": self._readyz},
            "/metrics": {"GET": self._metrics},
            "/": {"GET": self._index},
        }
        for methods in self._routes.values():
            if "GET" in methods:  # RFC 9110 §9.3.2; the connection sends the head alone
                methods["HEAD"] = methods["GET"]
        self._stream_routes: dict[str, Route] = {"GET": self._subscribe,
                                                 "DELETE": self._cancel}
        self.store: MemoryStore[Resumable] = MemoryStore(config.streams.retention)
        self._sweeper: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return (f"<Gateway providers={sorted(self.providers)} active={len(self.relays)} "
                f"draining={self.draining} pool={self.pool!r}>")

    # -- the HTTP handler ----------------------------------------------------------

    def handle(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        self.counters["requests"] += 1
        conn.response_headers = self._cors_headers(request)
        methods = self._routes.get(request.path)
        if methods is None and request.path.startswith(STREAMS_PREFIX):
            methods = self._stream_routes
        if methods is None:
            self.error(conn, 404, f"no route for {request.path}")
            return
        if request.method == "OPTIONS":
            self._preflight(request, conn, methods)
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
            self.error(conn, exc.status, str(exc), exc.headers, error_type=exc.error_type)

    def _cors_headers(self, request: HTTPRequest) -> list[tuple[str, str]]:
        origin = request.headers.get("origin")
        allowed = self.config.server.cors_origins
        if not origin or not allowed:
            return []
        if origin in allowed:
            return [("access-control-allow-origin", origin), ("vary", "origin"),
                    ("access-control-allow-credentials", "true"),
                    ("access-control-expose-headers", EXPOSED_HEADERS)]
        if "*" in allowed:
            return [("access-control-allow-origin", "*"),
                    ("access-control-expose-headers", EXPOSED_HEADERS)]
        return []

    def _preflight(self, request: HTTPRequest, conn: HTTPConnection,
                   methods: dict[str, Route]) -> None:
        if not conn.response_headers:
            self.error(conn, 403, "origin not allowed")
            return
        asked = request.headers.get("access-control-request-headers", "")
        allowed = sorted({*ALLOWED_REQUEST_HEADERS,
                          *(h.strip().lower() for h in asked.split(",") if h.strip())})
        conn.respond(204, [
            ("access-control-allow-methods", ", ".join(sorted({*methods, "OPTIONS"}))),
            ("access-control-allow-headers", ", ".join(allowed)),
            ("access-control-max-age", "600")], b"")

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
        generation = self._admit(request)
        if generation.resumable:
            resumable = self._start_resumable(generation)
            conn.response_headers.append(("location", resumable.url))
            resumable.output.subscribe(conn, 0, [])
            return
        relay = Relay(DirectOutput(conn, []), generation, self.resolve(generation),
                      SSEFormatter(self.config.streams.retry_ms), self.policy, self.pool,
                      on_end=self._relay_ended)
        self._start(relay)

    def _post_streams(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        resumable = self._start_resumable(self._admit(request))
        conn.respond_json(201, {"id": resumable.relay.id, "url": resumable.url},
                          [("location", resumable.url)])

    def _admit(self, request: HTTPRequest) -> GenerationRequest:
        """The request's generation, if the server takes one more stream now."""
        if self.draining:
            raise RequestError("server is draining", status=503, error_type="unavailable",
                               headers=[("retry-after", "5")])
        if len(self.relays) >= self.config.server.max_connections:
            raise RequestError("server is at capacity", status=503,
                               error_type="unavailable", headers=[("retry-after", "1")])
        generation = parse_generation_request(request.body)
        if generation.format != "sse":
            raise RequestError(f"format {generation.format!r} is not available yet")
        return generation

    def _start(self, relay: Relay) -> None:
        self.relays.add(relay)
        self.counters["streams_started"] += 1
        relay.start()

    def _start_resumable(self, generation: GenerationRequest) -> Resumable:
        route = self.resolve(generation)
        streams = self.config.streams
        loop = asyncio.get_running_loop()
        output = LogOutput(StreamLog(streams.max_events, streams.max_bytes),
                           cancel_when_alone=generation.on_disconnect == "cancel",
                           now=loop.time)
        relay = Relay(output, generation, route, SSEFormatter(streams.retry_ms), self.policy,
                      self.pool, on_end=self._relay_ended)
        resumable = Resumable(relay, output, f"{STREAMS_PREFIX}{relay.id}")
        self.store.add(relay.id, resumable)
        self._start(relay)
        self._schedule_sweep()
        return resumable

    def _subscribe(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        resumable = self._find(request)
        header = request.headers.get("last-event-id")
        if header is None:
            header = parse_qs(request.query).get("lastEventId", [None])[0]
        try:
            after = parse_last_event_id(header)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        log = resumable.output.log
        if log.finished and after >= log.last_id:
            # nothing left to send: 204 tells an EventSource to stop reconnecting
            conn.respond(204, [], b"")
            return
        resumable.output.subscribe(conn, min(after, log.last_id), [])

    def _cancel(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        resumable = self._find(request)
        was_running = resumable.relay.state is not RelayState.ENDED
        resumable.relay.cancel("the stream was cancelled by a client")
        conn.respond_json(200, {"id": resumable.relay.id,
                                "status": "cancelled" if was_running else "ended"})

    def _find(self, request: HTTPRequest) -> Resumable:
        stream_id = request.path[len(STREAMS_PREFIX):]
        resumable = self.store.get(stream_id) if stream_id else None
        if resumable is None:
            raise RequestError(f"no stream {stream_id!r} (never existed, or expired)",
                               status=404, error_type="not_found_error")
        return resumable

    def _schedule_sweep(self) -> None:
        if self._sweeper is None:
            interval = max(0.05, min(1.0, self.config.streams.retention / 4))
            self._sweeper = asyncio.get_running_loop().call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Forget expired streams; cancel generations nobody has read for too long."""
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        self.store.expire(now)
        idle_limit = self.config.streams.detached_idle_timeout
        for resumable in self.store.values():
            alone = resumable.output.alone_since
            if resumable.relay.state is not RelayState.ENDED and alone is not None and \
                    now - alone >= idle_limit:
                resumable.relay.cancel("no reader for too long")
        if len(self.store):
            self._schedule_sweep()

    def _relay_ended(self, relay: Relay) -> None:
        self.relays.discard(relay)
        self.store.mark_ended(relay.id, asyncio.get_running_loop().time())
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
        chain = routing.fallbacks.get(request.model)
        if chain:
            return [self._target(spec) for spec in chain]
        alias = routing.aliases.get(request.model)
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


STREAMS_PREFIX = "/v1/streams/"
# Response headers a page's script may read (besides the CORS-safelisted ones).
EXPOSED_HEADERS = "x-stream-id, location, retry-after"
# What fetch and EventSource clients send: JSON bodies, keys, resume positions.
ALLOWED_REQUEST_HEADERS = ("content-type", "authorization", "last-event-id")


@dataclass(frozen=True, slots=True)
class Resumable:
    relay: Relay
    output: LogOutput
    url: str


@functools.cache
def _demo_page() -> bytes:
    return resources.files("sseserver.static").joinpath("index.html").read_bytes()


_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error", 403: "forbidden", 404: "not_found_error",
    405: "method_not_allowed",
    413: "request_too_large", 429: "rate_limit_error", 503: "unavailable",
}

