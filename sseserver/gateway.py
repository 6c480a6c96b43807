"""The one place that wires routes, providers, formats and protocols together.

:class:`Gateway` is the HTTP handler: it routes each request, validates generation
requests, resolves the model to a chain of provider targets and starts a
:class:`~sseserver.relay.Relay` per stream. It also keeps the counters behind
``/metrics`` and the draining flag behind ``/readyz``. The handlers of the compatible
endpoints (``/v1/chat/completions``, ``/v1/messages``, ``/v1/models``, ``/v1/chat``) are
:class:`~sseserver.compat_routes.CompatRoutes`, which starts its streams here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from sseserver import metrics, stream_ids
from sseserver.aio.http_server import HTTPConnection, HTTPRequest
from sseserver.aio.pool import ConnectionPool
from sseserver.aio.upstream import Timeouts
from sseserver.compat.api import ANTHROPIC_MESSAGES, OPENAI_CHAT, CompatAPI
from sseserver.compat_routes import CHAT_PREFIX, CHAT_STREAM_SUFFIX, CompatRoutes
from sseserver.config import Config
from sseserver.core import cors
from sseserver.core.cors import CORSPolicy
from sseserver.core.stream_log import parse_last_event_id
from sseserver.errors import RequestError, status_error_type
from sseserver.fanout import LogOutput
from sseserver.formats.ai_sdk import UI_MESSAGE_STREAM_HEADERS, AISDKFormatter
from sseserver.formats.base import Formatter
from sseserver.formats.sse import SSEFormatter
from sseserver.gate import (
    Caller,
    Gate,
    Need,
    Refusal,
    credential_of,
    metrics_lines,
    with_max_tokens,
)
from sseserver.output import DirectOutput
from sseserver.providers.base import Provider
from sseserver.redact import Redactor
from sseserver.relay import Relay, RelayPolicy
from sseserver.routing import Router, Target
from sseserver.schema import GenerationRequest, parse_generation_request
from sseserver.streams import open_store
from sseserver.streams.store import Resumable, StreamStore

if TYPE_CHECKING:
    from sseserver.peers import Peers

logger = logging.getLogger("sseserver.gateway")

Route = Callable[[HTTPRequest, HTTPConnection], None]

# Need.NOTHING as a module name: an enum member read through its class goes through
# EnumType.__getattr__'s slot in CPython 3.11 (~0.8k instructions more than a global),
# and every request reads it.
_NO_NEED = Need.NOTHING


class Gateway:
    def __init__(self, config: Config, providers: Mapping[str, Provider]) -> None:
        self.config = config
        self.providers = dict(providers)
        self.router = Router(self.providers, config.routing)
        self.draining = False
        self.relays: set[Relay] = set()
        self.counters: dict[str, int] = {
            "requests": 0, "streams_started": 0, "streams_ok": 0, "streams_error": 0,
            "streams_cancelled": 0, "stream_events": 0, "http_errors": 0,
            "http_refused": 0,
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
            redact=Redactor(secret for provider in config.providers
                            for secret in provider.secrets),
        )
        self.pool = ConnectionPool(self.policy.timeouts, upstream.max_connections_per_origin,
                                   upstream.pool_idle_timeout)
        compat = CompatRoutes(self)
        self._routes: dict[str, dict[str, Route]] = {
            "/v1/stream": {"POST": self._post_stream},
            "/v1/streams": {"POST": self._post_streams},
            "/v1/chat/completions": {"POST": compat.post_chat_completions},
            "/v1/messages": {"POST": compat.post_messages},
            "/v1/models": {"GET": compat.models},
            "/v1/chat": {"POST": compat.post_chat},
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
        self._chat_stream_routes: dict[str, Route] = {"GET": compat.resume_chat}
        self._compat = compat
        # the routes that take a stream slot (refused with 503 while none is free)
        self._stream_starts: tuple[Route, ...] = (
            self._post_stream, self._post_streams, compat.post_chat_completions,
            compat.post_messages, compat.post_chat)
        self.store: StreamStore = open_store(config.streams)
        self.gate = Gate(config.auth)
        self._needs = self._route_needs()
        self._caller: Caller | None = None  # of the request being routed (synchronously)
        # the other workers of a --workers server (peers.py): None in a single process
        self.peers: Peers | None = None
        server = config.server
        self._cors = CORSPolicy.from_settings(
            server.cors_origins, server.cors_allow_credentials, server.cors_allow_headers)
        self._cors_enabled = self._cors.enabled

    def _route_needs(self) -> dict[Route, Need]:
        """What each route asks of its caller when [auth] is configured."""
        auth = self.config.auth
        by_id = Need.SUBSCRIBE if auth.subscribe == "token" else Need.NOTHING
        compat = self._compat
        needs: dict[Route, Need] = {route: Need.CREATE for route in self._stream_starts}
        needs.update({self._subscribe: by_id, self._cancel: by_id,
                      compat.resume_chat: Need.SUBSCRIBE, compat.models: Need.ANY,
                      self._metrics: Need.KEY if auth.metrics == "key" else Need.NOTHING})
        return needs

    def __repr__(self) -> str:
        return (f"<Gateway providers={sorted(self.providers)} active={len(self.relays)} "
                f"draining={self.draining} pool={self.pool!r}>")

    # -- the HTTP handler ----------------------------------------------------------

    def handle(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        if self.peers is not None and self.peers.route(request, conn):
            return  # the worker that holds its stream answers it (and counts it)
        self.counters["requests"] += 1
        if self._cors_enabled:  # else the connection's fresh list stays, empty
            conn.response_headers = self._cors_headers(request)
        methods = self._routes.get(request.path)
        if methods is None and request.path.startswith(STREAMS_PREFIX):
            methods = self._stream_routes
        elif methods is None and request.path.startswith(CHAT_PREFIX) and \
                request.path.endswith(CHAT_STREAM_SUFFIX):
            methods = self._chat_stream_routes
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
        caller = self._check_caller(request, route) if self.gate.enabled else None
        if caller is not None and isinstance(caller, Refusal):
            self._refuse(request.path, conn, caller)
            return
        self._caller = caller
        try:
            route(request, conn)
        except RequestError as exc:
            self.error(conn, exc.status, str(exc), exc.headers, error_type=exc.error_type)
        finally:
            self._caller = None
            if caller is not None:
                self.gate.release_unstarted(caller)

    def _check_caller(self, request: HTTPRequest, route: Route, *, take: bool = True
                      ) -> Caller | Refusal | None:
        return self.gate.check(credential_of(request.headers, request.query),
                               self._needs.get(route, _NO_NEED),
                               _stream_id_of(request.path), time.time(), take=take)

    def within_ceiling(self, generation: GenerationRequest) -> GenerationRequest:
        """The generation with its caller's max_tokens ceiling when it states none."""
        caller = self._caller
        if caller is None:  # no gate, or a route it does not ask about: no ceiling
            return generation
        return with_max_tokens(generation, self.gate.max_tokens_ceiling(caller))

    def _refuse(self, path: str, conn: HTTPConnection, refusal: Refusal) -> None:
        """A refusal of the gate, in the error shape of the endpoint called."""
        api = COMPAT_APIS.get(path)
        if api is None:
            self.error(conn, refusal.status, refusal.message, refusal.headers,
                       error_type=refusal.error_type)
            return
        self.counters["http_errors"] += 1
        conn.respond_json(refusal.status, api.shape(refusal.status, {"error": {
            "type": refusal.error_type, "message": refusal.message}}), refusal.headers)

    def admit_head(self, request: HTTPRequest, conn: HTTPConnection) -> bool:
        """Whether to ask for the body of a request whose client awaits ``100
        Continue``: a request refused whatever its body (no route, a method the route
        lacks, no room for a stream, no or a wrong credential, a limit its key is at)
        is handled now, with its final status."""
        methods = self._routes.get(request.path)
        if methods is None and request.path.startswith(STREAMS_PREFIX):
            methods = self._stream_routes
        route = methods.get(request.method) if methods else None
        if route is not None and not (route in self._stream_starts and (
                self.draining or len(self.relays) >= self.config.server.max_connections)):
            return self._admit_caller(request, route, conn)
        self.handle(request, conn)  # answers as it would with the body
        return False

    def _admit_caller(self, request: HTTPRequest, route: Route, conn: HTTPConnection
                      ) -> bool:
        """The gate's look at a head: a refusal now (401 before any body is sent);
        nothing is taken, the request is checked again once its body is in."""
        if not self.gate.enabled:
            return True
        refusal = self._check_caller(request, route, take=False)
        if not isinstance(refusal, Refusal):
            return True
        self.counters["requests"] += 1
        conn.response_headers = self._cors_headers(request)
        self._refuse(request.path, conn, refusal)
        return False

    def _cors_headers(self, request: HTTPRequest) -> list[tuple[str, str]]:
        return cors.response_headers(self._cors, request.headers.get("origin"))

    def _preflight(self, request: HTTPRequest, conn: HTTPConnection,
                   methods: dict[str, Route]) -> None:
        policy = self._cors
        if not policy.allows(request.headers.get("origin")):
            self.error(conn, 403, "origin not allowed")
            return
        try:
            allow_headers = cors.allowed_request_headers(
                policy, request.headers.get("access-control-request-headers", ""))
        except cors.PreflightRefused as exc:
            self.error(conn, 400, str(exc))
            return
        conn.respond(204, [
            ("access-control-allow-methods", ", ".join(sorted({*methods, "OPTIONS"}))),
            ("access-control-allow-headers", allow_headers),
            ("access-control-max-age", cors.PREFLIGHT_MAX_AGE)], b"")

    def on_protocol_error(self, conn: HTTPConnection, status: int, message: str) -> None:
        # Refused before routing, and answered all the same: a request and an error.
        request = conn.request_in_progress
        if request is not None:  # a body refused (413, 408): a page may read why
            conn.response_headers = self._cors_headers(request)
        counters = self.counters
        counters["requests"] += 1
        counters["http_refused"] += 1
        counters["http_errors"] += 1
        logger.debug("protocol error from %s: %d %s", conn.peer, status, message)

    def error(self, conn: HTTPConnection, status: int, message: str,
              headers: list[tuple[str, str]] | None = None, *,
              error_type: str | None = None) -> None:
        self.counters["http_errors"] += 1
        conn.respond_json(status, {"error": {
            "type": error_type or status_error_type(status), "message": message}},
            headers)

    # -- routes --------------------------------------------------------------------

    def _post_stream(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        generation = self._admit(request)
        if generation.resumable:
            resumable = self.start_resumable_request(generation)
            conn.response_headers.append(("location", resumable.url))
            resumable.output.subscribe(conn, 0, resumable.headers)
            return
        # the format's own headers: none but the AI SDK's (format_headers, not called)
        output_format = generation.format
        headers = [] if output_format != "ai-sdk" else format_headers(output_format)
        relay = Relay(DirectOutput(conn, headers), generation,
                      self.resolve(generation), self._formatter(output_format),
                      self.policy, self.pool, on_end=self.relay_ended)
        self.start_relay(relay)

    def _post_streams(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        resumable = self.start_resumable_request(self._admit(request))
        conn.respond_json(201, {"id": resumable.relay.id, "url": resumable.url},
                          [("location", resumable.url)])

    def check_room(self) -> None:
        """Raises :class:`RequestError` (503) unless the server takes one more stream."""
        if self.draining:
            raise RequestError("server is draining", status=503, error_type="unavailable",
                               headers=[("retry-after", "5")])
        if len(self.relays) >= self.config.server.max_connections:
            raise RequestError("server is at capacity", status=503,
                               error_type="unavailable", headers=[("retry-after", "1")])

    def _admit(self, request: HTTPRequest) -> GenerationRequest:
        """The request's generation, if the server takes one more stream now."""
        if self.draining or len(self.relays) >= self.config.server.max_connections:
            self.check_room()  # refuses it, saying why
        generation = parse_generation_request(request.body)
        return generation if self._caller is None else self.within_ceiling(generation)

    def _formatter(self, output_format: str) -> Formatter:
        if output_format == "ai-sdk":
            return AISDKFormatter()
        return SSEFormatter(self.config.streams.retry_ms)

    def start_relay(self, relay: Relay) -> None:
        caller = self._caller
        if caller is not None:
            relay.key = caller.key
            self.gate.stream_started(caller, time.time())
        self.relays.add(relay)
        self.counters["streams_started"] += 1
        relay.start()

    def start_resumable_request(self, generation: GenerationRequest,
                                 chat_id: str | None = None) -> Resumable:
        """A resumable stream of ``/v1/stream``, ``/v1/streams`` or ``/v1/chat``."""
        return self.start_resumable(
            generation, self._formatter(generation.format), format_headers(generation.format),
            cancel_when_alone=generation.on_disconnect == "cancel", chat_id=chat_id)

    def start_resumable(self, generation: GenerationRequest, formatter: Formatter,
                         headers: list[tuple[str, str]], *, cancel_when_alone: bool,
                         route: list[Target] | None = None, chat_id: str | None = None,
                         output_type: type[LogOutput] = LogOutput) -> Resumable:
        """Start a generation into a stream log; readers subscribe to its output.
        ``headers`` are the format's own response headers, on every reader's response."""
        route = route if route is not None else self.resolve(generation)
        store = self.store
        store.check_available()
        stream_id = stream_ids.new_stream_id()
        output = output_type(store.new_log(stream_id), cancel_when_alone=cancel_when_alone,
                             now=asyncio.get_running_loop().time)
        relay = Relay(output, generation, route, formatter, self.policy, self.pool,
                      on_end=self._resumable_ended, stream_id=stream_id)
        resumable = Resumable(relay, output, f"{STREAMS_PREFIX}{stream_id}", headers, chat_id)
        store.add(resumable, formatter)
        self.start_relay(relay)
        return resumable

    def _subscribe(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        header = request.headers.get("last-event-id")
        if header is None:
            header = parse_qs(request.query).get("lastEventId", [None])[0]
        try:
            after = parse_last_event_id(header)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        self.store.subscribe(self._stream_id(request), conn, after)

    def _cancel(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        self.store.cancel(self._stream_id(request), conn)

    def _stream_id(self, request: HTTPRequest) -> str:
        stream_id = request.path[len(STREAMS_PREFIX):]
        if not stream_id:
            raise RequestError("no stream '' (never existed, or expired)", status=404,
                               error_type="not_found_error")
        return stream_id

    def _resumable_ended(self, relay: Relay) -> None:
        self.store.ended(relay.id)  # its retention starts
        self.relay_ended(relay)

    def relay_ended(self, relay: Relay) -> None:
        """A stream ended (a resumable one's store is told first, by start_resumable's
        relay: the store holds nothing of the others)."""
        self.relays.discard(relay)
        self.counters["stream_events"] += relay.events
        self.counters[_STATUS_COUNTERS.get(relay.status, "streams_error")] += 1
        if relay.key is not None:
            usage = relay.usage
            self.gate.stream_ended(relay.key, usage.input_tokens if usage else 0,
                                   usage.output_tokens if usage else 0)

    def _healthz(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond_json(200, {"status": "ok"})

    def _readyz(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        peers = self.peers
        if self.draining:
            conn.respond_json(503, {"status": "draining"}, [("retry-after", "5")])
        elif peers is not None and not peers.all_up:  # a worker is down or starting
            conn.respond_json(503, {"status": "workers_missing",
                                    "workers_up": peers.workers_up,
                                    "workers": self.config.server.workers},
                              [("retry-after", "1")])
        else:
            conn.respond_json(200, {"status": "ready", "streams": len(self.relays)})

    # -- metrics -------------------------------------------------------------------

    def _metrics(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        if self.peers is None:
            _send_metrics(conn, self.metrics_text())
        else:  # the whole server's: every worker's counters summed
            self.peers.whole_server_metrics(self.metrics_text(),
                                            functools.partial(_send_metrics, conn))

    def _index(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond(200, [("content-type", "text/html; charset=utf-8"),
                           ("cache-control", "no-cache")], _demo_page())

    def metrics_text(self) -> str:
        """This process's metrics (with --workers, one worker's)."""
        extra = metrics_lines(self.gate)
        if self.peers is not None:
            extra += self.peers.metrics_lines()
        return metrics.render(self.counters, active=len(self.relays),
                              draining=self.draining, extra=extra)

    # -- model routing -------------------------------------------------------------

    def resolve(self, request: GenerationRequest) -> list[Target]:
        """The provider targets for a request, in fallback order (see
        :meth:`Router.targets`, which raises 400 or 503), within what the caller's key
        or token allows.

        Raises :class:`RequestError` as the router does, and 403 for a model, provider
        or max_tokens outside the caller's key or token.
        """
        targets = self.router.targets(request.model, request.provider)
        if self._caller is None:  # the gate limits callers only
            return targets
        refusal = self.gate.check_generation(
            self._caller, request.model, [t.provider.settings.name for t in targets],
            request.max_tokens)
        if refusal is not None:
            raise RequestError(refusal.message, refusal.status, refusal.error_type,
                               refusal.headers)
        return targets

    def log_routing(self) -> None:
        """Say at start who serves unrouted models, or that nothing can be served."""
        notice = self.router.startup_notice()
        logger.log(notice.level, "%s", notice.message)


STREAMS_PREFIX = "/v1/streams/"
# The counter of a stream's end by its status (StreamStatus values): any other is an error.
_STATUS_COUNTERS = {"ok": "streams_ok", "cancelled": "streams_cancelled"}
COMPAT_APIS: dict[str, CompatAPI] = {"/v1/chat/completions": OPENAI_CHAT,
                                     "/v1/messages": ANTHROPIC_MESSAGES}


def _stream_id_of(path: str) -> str:
    """The stream (or useChat chat) id a path names, '' for other paths."""
    if path.startswith(STREAMS_PREFIX):
        return path[len(STREAMS_PREFIX):]
    if path.startswith(CHAT_PREFIX) and path.endswith(CHAT_STREAM_SUFFIX):
        return unquote(path[len(CHAT_PREFIX):-len(CHAT_STREAM_SUFFIX)])
    return ""


def _send_metrics(conn: HTTPConnection, text: str) -> None:
    conn.respond(200, [("content-type", "text/plain; version=0.0.4")], text.encode())


def format_headers(output_format: str) -> list[tuple[str, str]]:
    return list(UI_MESSAGE_STREAM_HEADERS) if output_format == "ai-sdk" else []


@functools.cache
def _demo_page() -> bytes:
    return resources.files("sseserver.static").joinpath("index.html").read_bytes()


