"""One generation relayed from a provider to one client: the thin asyncio driver.

A :class:`Relay` performs what two sans-IO parts decide: :mod:`sseserver.retry` says
what follows an attempt (retry after a delay, the next target of the route, fail,
done), and a :class:`~sseserver.pump.Pump` turns the provider's body into client
frames, as the upstream connection's body sink (so a token costs no call of the
driver's). The driver makes the attempts, opens the response, sends the heartbeats
the loop's :class:`~sseserver.aio.heartbeat.Heartbeats` call for, ends the stream and logs it.
An attempt runs as a short task only while it awaits something (a backoff, a
connection, an error body); the head and the body arrive as callbacks. Its state is
one enum, its moves one table (:data:`TRANSITIONS`):

    STARTING --(upstream 200, or first heartbeat due)--> OPEN
    OPEN --(first content event sent)--> COMMITTED
    any --(done, error, client gone, shutdown)--> ENDED

Before COMMITTED a failure may be retried or fall back; after it, a failure is an
``error`` event followed by the end frame (DESIGN.md §4).

Whatever a provider sends, it cannot break the relay: an exception from parsing or
mapping its body ends the stream (frames produced before it sent first), and every
error text a provider had a hand in leaves for the client and the log through one
function, :meth:`Relay._public`, which redacts every configured key.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from sseserver import stream_ids
from sseserver.aio.heartbeat import heartbeats_for
from sseserver.aio.pool import ConnectionPool
from sseserver.aio.upstream import ResponseHead, Timeouts, UpstreamConnection
from sseserver.config import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    HEARTBEAT_INTERVAL,
    MAX_BYTES_WITHOUT_EVENT,
    MAX_EVENT_BYTES,
    MAX_RETRIES,
)
from sseserver.errors import (
    ProviderError,
    RequestError,
    ShuttingDown,
    StreamCancelled,
    StreamFailure,
    StreamTooLarge,
    UpstreamError,
)
from sseserver.events import Usage
from sseserver.failures import DRAIN_RETRY_AFTER, client_status
from sseserver.formats.base import Formatter
from sseserver.output import Output
from sseserver.providers.base import UpstreamRequest
from sseserver.providers.errors import is_event_stream
from sseserver.pump import NotAStream, Pump
from sseserver.redact import Redactor, describe_exception
from sseserver.retry import Done, Fail, NextTarget, Position, RetryAfter, decide
from sseserver.routing import Target
from sseserver.schema import GenerationRequest
from sseserver.stream_end import StreamStatus, log_stream_end

__all__ = ["TRANSITIONS", "Relay", "RelayPolicy", "RelayState", "StreamStatus", "Target"]

logger = logging.getLogger("sseserver.streams")


class RelayState(enum.Enum):
    STARTING = "starting"  # nothing sent to the client yet
    OPEN = "open"  # the response head is out, no content yet
    COMMITTED = "committed"  # the client saw content: no retry, no fallback
    ENDED = "ended"

    # A member is its own identity (Enum compares by it): hashed so in C, not by
    # Enum.__hash__'s Python call; every move looks its state up twice (5k instructions
    # a stream's three moves).
    __hash__ = object.__hash__


# The moves a relay may make; any other is a bug (:meth:`Relay._move` refuses it).
TRANSITIONS: dict[RelayState, frozenset[RelayState]] = {
    RelayState.STARTING: frozenset({RelayState.OPEN, RelayState.ENDED}),
    RelayState.OPEN: frozenset({RelayState.COMMITTED, RelayState.ENDED}),
    RelayState.COMMITTED: frozenset({RelayState.ENDED}),
    RelayState.ENDED: frozenset(),
}


# An error type is an identifier; a provider's may be anything, and is cut to this.
MAX_ERROR_TYPE_CHARS = 64


# Members as module names: reading one through its enum class costs ~1k instructions
# in CPython 3.11 (the metaclass's attribute lookup), a global ~0.1k.
_STARTING, _OPEN, _COMMITTED, _ENDED = \
    RelayState.STARTING, RelayState.OPEN, RelayState.COMMITTED, RelayState.ENDED


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    max_retries: int = MAX_RETRIES
    backoff_initial: float = BACKOFF_INITIAL
    backoff_max: float = BACKOFF_MAX
    # A Retry-After longer than this is not waited for (the SDKs cap it likewise).
    max_retry_after: float = 60.0
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_event_bytes: int = MAX_EVENT_BYTES
    max_bytes_without_event: int = MAX_BYTES_WITHOUT_EVENT
    # Built from every configured provider's key: any provider's error may reach any
    # stream (a fallback chain), and a key-shaped text is redacted whoever sent it.
    redact: Redactor = field(default_factory=Redactor)


class _Spent:
    """What a finished stream's pump still answers: its counts."""

    __slots__ = ("events", "usage")
    finished = False  # nothing is read any more: a connection still held is closed

    def __init__(self, pump: Pump | _Spent) -> None:
        self.events = pump.events
        self.usage = pump.usage

    def stop(self) -> None:
        pass


class Relay:
    # Slots: thousands live at once; a dict of attributes each would be more memory.
    __slots__ = ("_formatter", "_heartbeat", "_loop", "_on_end", "_output", "_policy",
                 "_pool", "_position", "_pump", "_request", "_route", "_target", "_task",
                 "_tries", "_upstream", "attempts", "first_token_at", "id", "key", "reason",
                 "started", "state", "status")

    def __init__(self, output: Output, request: GenerationRequest,
                 route: Sequence[Target], formatter: Formatter, policy: RelayPolicy,
                 pool: ConnectionPool, on_end: Callable[[Relay], None] | None = None,
                 stream_id: str | None = None) -> None:
        self.id = stream_id or stream_ids.new_stream_id()
        self.state = _STARTING
        self._output = output
        self._request: GenerationRequest | None = request  # None once the stream ended
        self._route = route
        self._formatter = formatter
        self._policy = policy
        self._pool = pool
        self._on_end = on_end
        self._loop = pool.loop  # not asyncio.get_running_loop(): a system call each
        self._pump: Pump | _Spent = Pump(formatter, output, self)
        self._upstream: UpstreamConnection | None = None
        self._target: Target | None = None
        self._position = 0  # the route's target being tried
        self._tries = 0  # attempts made on it
        self._task: asyncio.Task[None] | None = None
        # the loop's heartbeats of this interval, which check this stream from start()
        self._heartbeat = heartbeats_for(self._loop, policy.heartbeat_interval)
        self.started = self._loop.time()
        self.first_token_at: float | None = None
        self.attempts = 0
        self.status = StreamStatus.OK
        self.reason = ""
        self.key: str | None = None  # the name of the API key it serves (never the key)

    def __repr__(self) -> str:
        return (f"<Relay {self.id} state={self.state.value} attempts={self.attempts} "
                f"events={self.events}>")

    @property
    def events(self) -> int:
        """Frames sent so far."""
        return self._pump.events

    @property
    def usage(self) -> Usage | None:
        return self._pump.usage

    def _move(self, state: RelayState) -> None:
        if state not in TRANSITIONS[self.state]:
            raise AssertionError(f"relay {self.id}: no move from {self.state} to {state}")
        self.state = state

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._output.bind(self.on_client_gone, self._overflow)
        if self._output.streams_at_once:
            self._open_response()
        self._heartbeat.start(self)
        self._try_target(0.0)

    # -- walking the route ---------------------------------------------------------
    # An attempt is a task only while it has something to await (a backoff, a new
    # connection, an error body): on an idle pooled connection it needs none. Waiting
    # for the response head and relaying the body are callbacks: an open stream, which
    # may wait minutes for its first token, holds no task and no coroutine frame
    # (~1 KiB, an eighth of an idle stream).

    def _try_target(self, delay: float) -> None:
        """Make the next attempt on the current target, after ``delay`` seconds."""
        if delay:
            self._spawn(self._attempt(delay))
            return
        try:
            request = self._begin_attempt()
            upstream = self._pool.request_idle(request.url, request.method, request.headers,
                                               request.body)
        except Exception as exc:
            self._not_sent(exc)
            return
        if upstream is None:
            self._spawn(self._connect(request))
        else:
            self._await_head(upstream)

    def _spawn(self, step: Coroutine[Any, Any, None]) -> None:
        task = self._task = self._loop.create_task(step)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        if self._task is task:  # a finished task still holds its coroutine: let both go
            self._task = None

    async def _attempt(self, delay: float) -> None:
        """:meth:`_try_target` once the backoff is over."""
        try:
            await asyncio.sleep(delay)
            if self.state is not _ENDED:
                self._try_target(0.0)
        except asyncio.CancelledError:
            pass

    def _begin_attempt(self) -> UpstreamRequest:
        """Count an attempt on the current target and build its request (which lives
        only until it is sent, not for the stream's life: orjson's buffer for it is
        ~4 KiB, a third of an idle stream's memory)."""
        target, request = self._route[self._position], self._request
        assert request is not None, "no attempt begins once the stream ended"
        self._tries += 1
        self.attempts += 1
        self._target = target
        return target.provider.build_request(request, target.model)

    async def _connect(self, request: UpstreamRequest) -> None:
        """Send ``request`` on a new pooled connection (or one freed for it)."""
        try:
            upstream = await self._pool.request(request.url, request.method, request.headers,
                                                request.body)
        except asyncio.CancelledError:
            return
        except Exception as exc:
            self._not_sent(exc)
            return
        if self.state is _ENDED:  # given up while connecting
            self._pool.discard(upstream)
        else:
            self._await_head(upstream)

    def _await_head(self, upstream: UpstreamConnection) -> None:
        """The request is out: the head's arrival (:meth:`on_head`) takes it on."""
        self._upstream = upstream
        upstream.await_head(self)

    def _not_sent(self, exc: Exception) -> None:
        """The attempt's request could not be sent: try on, or end the stream."""
        if isinstance(exc, UpstreamError):
            self._advance(exc)
        elif isinstance(exc, RequestError):  # this provider cannot take the request
            self._advance(UpstreamError(str(exc), status=exc.status, retryable=False,
                                        error_type=exc.error_type))
        else:  # a bug must end this stream only, cleanly
            self._internal_error(exc)

    def on_head(self, head: ResponseHead) -> None:
        """The upstream's response head, told by the connection as it reads it (a
        connection given back to the pool tells nothing more)."""
        upstream, target = self._upstream, self._target
        if upstream is None or target is None or self.state is _ENDED:
            return
        try:
            if head.status == 200 and is_event_stream(head.headers,
                                                      target.provider.media_types):
                self._start_pump(target, upstream)
            else:
                self._spawn(self._status_error(target, head, upstream.read_body()))
        except Exception as exc:  # a bug must end this stream only, cleanly
            self._internal_error(exc)

    def on_head_error(self, error: UpstreamError) -> None:
        """The attempt's response failed before its head."""
        self._attempt_over(error)

    async def _status_error(self, target: Target, head: ResponseHead,
                            body: asyncio.Future[bytes]) -> None:
        try:
            error_body = await body
            # the wall clock, not the loop's: a Retry-After date is a time of day
            self._advance(target.provider.map_error(head.status, head.headers, error_body,
                                                    time.time()))
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            self._internal_error(exc)

    def _start_pump(self, target: Target, upstream: UpstreamConnection) -> None:
        """Let the body flow to the client; :meth:`on_settled` hears how it ended.
        The response opens here (as a rule), with the body's first read: its head
        and that read's frames go out in one write (with the end, if the provider
        finished in it)."""
        if self.state is not _STARTING:
            self._begin_body(target, upstream)
            return
        self._move(_OPEN)

        def first_read() -> bool:  # True: complete() follows in the next pass
            self._begin_body(target, upstream)
            return self._pump.finished

        formatter = self._formatter
        self._output.open_with(self.id, formatter.content_type, formatter.preamble,
                               first_read)

    def _begin_body(self, target: Target, upstream: UpstreamConnection) -> None:
        policy = self._policy  # a provider whose body is no SSE names its own reader
        self._pump.begin(target.provider.new_body_reader(policy.max_event_bytes,
                                                         policy.max_bytes_without_event),
                         target.provider.new_adapter())
        self._output.attach_flow(upstream.pause_reading, upstream.resume_reading)
        upstream.stream(self._pump)

    def on_settled(self, result: UpstreamError | NotAStream | None) -> None:
        """The body ended, well or not (the pump says so once). The attempt moves on in
        the next loop pass, not here: this runs inside the upstream's own callbacks."""
        if type(result) is NotAStream:
            self._read_error_document(result.start)
        else:
            self._loop.call_soon(self._attempt_over, result)

    def _read_error_document(self, start: bytes) -> None:
        """The 200 labelled an event stream is a JSON error or a page (its first read
        says so): read on as an error body, of which ``start`` is the beginning, and
        judged as one (a 200 of another content type is judged so too): the provider's
        own kind of error decides, and a page is not retried (the same page would come)."""
        upstream, target = self._upstream, self._target
        assert upstream is not None and target is not None
        assert upstream.response_head is not None
        self._spawn(self._status_error(target, upstream.response_head,
                                       upstream.read_body(start=start)))

    def on_unreadable(self, exc: Exception) -> None:
        target = self._target
        logger.warning("stream %s: an event from %s could not be read: %s", self.id,
                       target.provider.settings.name if target else None,
                       describe_exception(exc, self._policy.redact))

    def _attempt_over(self, error: UpstreamError | None) -> None:
        try:
            self._advance(error)
        except Exception as exc:  # a bug must end this stream only, cleanly
            self._internal_error(exc)

    def _advance(self, error: UpstreamError | None) -> None:
        """An attempt ended (``error`` None: the provider finished): perform what
        :func:`sseserver.retry.decide` says follows."""
        self._output.detach_flow()
        self._dispose_upstream()
        if self.state is _ENDED:
            return
        if error is None:  # finished: done from any position (the rules' first row),
            self.complete()  # without the table's lookup (10k instructions a stream)
            return
        committed = self.state is _COMMITTED
        if not committed:
            logger.info("stream %s: attempt %d on %s failed: %s", self.id, self.attempts,
                        self._route[self._position].provider.settings.name,
                        self._public(error)[1])
        last = self._position + 1 >= len(self._route)
        decision = decide(error, self._tries, Position(committed, last), self._policy,
                          random.random())
        if type(decision) is Done:
            self.complete()
        elif type(decision) is RetryAfter:
            self._try_target(decision.delay)
        elif type(decision) is NextTarget:
            self._position += 1
            self._tries = 0
            self._try_target(0.0)
        else:
            assert error is not None and type(decision) is Fail
            self._fail(error, decided=decision)

    def _internal_error(self, exc: Exception) -> None:
        # not exc_info: the message may hold provider text, and a key with it
        logger.error("relay %s failed: %s", self.id,
                     describe_exception(exc, self._policy.redact))
        self._dispose_upstream()
        self._fail(ProviderError(f"internal error: {type(exc).__name__}", retryable=False))

    def on_commit(self) -> dict[str, Any]:
        """The pump commits the stream: its first content event is going out."""
        assert self._request is not None, "a stream commits before it ends"
        if self.state is _STARTING:  # (the 200 opened it, as a rule)
            self._open_response()
        self._move(_COMMITTED)
        self.first_token_at = self._loop.time()
        target = self._target  # None only if no attempt could even begin
        return {"stream_id": self.id,
                "provider": target.provider.settings.name if target else None,
                "model": target.model if target else self._request.model}

    # -- ending --------------------------------------------------------------------

    def _fail(self, error: StreamFailure, status: StreamStatus = StreamStatus.ERROR,
              decided: Fail | None = None) -> None:
        """End the stream with a typed error: JSON before the head, events after it."""
        if self.state is _ENDED:
            return
        self.status = status
        error_type, message = self._public(error)
        self.reason = message
        if self.state is _STARTING:
            code, headers = (decided.status, list(decided.headers)) if decided else \
                client_status(error)
            self._output.respond_error(code, headers, {"error": {
                "type": error_type, "message": message}}, error.status)
            self._end()
            return
        self._output.finish(self._pump.failure_frames(  # past any bound: a proper ending
            error_type, message, error.retryable, error.status))
        self._end()

    def complete(self) -> None:
        """The provider finished normally: send what is held, then the end frame."""
        if self.state is not _ENDED:
            self._output.finish(self._pump.end_frames())
            self._end()

    def shutdown(self, message: str) -> None:
        """The server is draining and out of time: end with a retryable error (a 503
        with Retry-After, if the response has not begun)."""
        self._stop_with(ShuttingDown(message, retry_after=DRAIN_RETRY_AFTER))

    def cancel(self, message: str = "the stream was cancelled") -> None:
        """Stop generating (the stop button): readers get a ``cancelled`` error."""
        self._stop_with(StreamCancelled(message), StreamStatus.CANCELLED)

    def _overflow(self) -> None:
        # the stream reached its memory bound: end it rather than grow (DESIGN.md §5)
        self._stop_with(StreamTooLarge("the stream passed its size limit"))

    def _stop_with(self, error: StreamFailure,
                   status: StreamStatus = StreamStatus.ERROR) -> None:
        self._cancel_task()
        self._dispose_upstream()
        self._fail(error, status)

    def on_client_gone(self) -> None:
        """The last reader left and the stream's policy is to stop generating."""
        if self.state is _ENDED:
            return
        self.status = StreamStatus.CANCELLED
        self.reason = "client disconnected"
        self._cancel_task()
        self._dispose_upstream()
        self._end()

    def _end(self) -> None:
        self._move(_ENDED)
        self._heartbeat.stop(self)
        self._pump.stop()  # a body still flowing is let go in the next pass
        self._output.unbind()
        target, request = self._target, self._request  # the stream_end line
        log_stream_end(self, target.provider.settings.name if target else None,
                       target.model if target else request and request.model,
                       self._loop.time(), self._output.bytes_sent)
        on_end, self._on_end = self._on_end, None
        self._let_go()
        if on_end is not None:
            on_end(self)

    def _let_go(self) -> None:
        """A finished stream may be held for the whole retention window, but its late
        readers read its log, not the relay: keep only what is asked of it then (its
        id, state, status, counts, usage, times), not the request (a whole
        conversation), the route, or the pump with its reader and adapter (and the
        buffers they hold)."""
        self._pump = _Spent(self._pump)
        self._request = None
        self._route = ()

    def _cancel_task(self) -> None:
        if self._task is not None and not self._task.done() and \
                self._task is not asyncio.current_task():
            self._task.cancel()

    def _dispose_upstream(self) -> None:
        """Give the upstream connection back to the pool, which reuses it, lets the
        end of a finished body arrive first, or closes it (which also stops the
        provider generating) when the stream was given up midway."""
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            self._pool.finish(upstream, complete=self._pump.finished)

    # -- the client response -------------------------------------------------------

    def _open_response(self) -> None:
        if self.state is _STARTING:
            self._move(_OPEN)
            self._output.open(self.id, self._formatter.content_type,
                              self._formatter.preamble)

    def _public(self, error: StreamFailure) -> tuple[str, str]:
        """The error's type and message as a client or the log may see them: every
        configured key, and anything shaped like one, redacted (a provider writes some
        of both). The one way error text leaves the relay."""
        redact = self._policy.redact
        return redact(error.error_type, MAX_ERROR_TYPE_CHARS), redact(str(error))

    def on_heartbeat_due(self) -> None:
        """Silent for a heartbeat interval (:class:`~sseserver.aio.heartbeat.Heartbeats`)."""
        self._open_response()  # the head goes out when the first heartbeat is due
        self._output.heartbeat(self._formatter.heartbeat)
