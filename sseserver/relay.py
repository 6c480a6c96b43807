"""One generation relayed from a provider to one client: the per-stream orchestration.

A :class:`Relay` walks its route (the provider/model targets of a fallback chain),
retrying before the stream commits, then pushes the provider's body through the hot
path — SSE parse, adapter, formatter, one chunk write per upstream read — straight
from the upstream protocol's callbacks. An attempt runs as a short task only while it
awaits something (a backoff, a connection, an error body); the head and the body
arrive as callbacks. Its state is one enum:

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

import orjson

from sseserver import stream_ids
from sseserver.aio.pool import ConnectionPool
from sseserver.aio.upstream import ResponseHead, State, Timeouts, UpstreamConnection
from sseserver.aio.wheel import Deadline, wheel_for
from sseserver.config import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    HEARTBEAT_INTERVAL,
    MAX_BYTES_WITHOUT_EVENT,
    MAX_EVENT_BYTES,
    MAX_RETRIES,
)
from sseserver.core.sse import NotAnEventStream, SSEParser
from sseserver.errors import (
    ProviderError,
    RemoteProtocolError,
    RequestError,
    ShuttingDown,
    SSEServerError,
    UpstreamError,
)
from sseserver.events import CONTENT_EVENTS, ErrorEvent, NormalizedEvent, TextDelta, Usage
from sseserver.failures import DRAIN_RETRY_AFTER, body_fault, client_status, typed_error
from sseserver.formats.base import Formatter
from sseserver.output import Output
from sseserver.providers.base import EventReader, StreamAdapter, UpstreamRequest
from sseserver.providers.errors import is_event_stream
from sseserver.redact import Redactor, describe_exception
from sseserver.routing import Target
from sseserver.schema import GenerationRequest

logger = logging.getLogger("sseserver.streams")


class RelayState(enum.Enum):
    STARTING = "starting"
    OPEN = "open"
    COMMITTED = "committed"
    ENDED = "ended"


# The per-token test reads this one global rather than a global and its attribute.
_COMMITTED = RelayState.COMMITTED
# What a relay holds before its first body: never fed (a body comes with its own).
_NO_BODY_YET = SSEParser()
# An error type is an identifier; a provider's may be anything, and is cut to this.
MAX_ERROR_TYPE_CHARS = 64


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



def new_stream_id() -> str:
    return stream_ids.new_stream_id()


class Relay:
    # Slots: a token's read touches this object, one of thousands; a dict of its
    # attributes would be more memory to miss in the cache.
    __slots__ = ("_adapter", "_events_seen", "_formatter", "_heartbeat", "_held", "_loop",
                 "_on_end", "_output", "_parser", "_policy", "_pool", "_position", "_pumping",
                 "_quiet_checks", "_request", "_route", "_silent_events", "_target", "_task",
                 "_tries", "_upstream", "_wheel", "_write_frame", "attempts", "events",
                 "first_token_at", "id", "key", "reason", "started", "state", "status",
                 "usage")

    def __init__(self, output: Output, request: GenerationRequest,
                 route: Sequence[Target], formatter: Formatter, policy: RelayPolicy,
                 pool: ConnectionPool, on_end: Callable[[Relay], None] | None = None,
                 stream_id: str | None = None) -> None:
        self.id = stream_id or new_stream_id()
        self.state = RelayState.STARTING
        self._output = output
        self._write_frame = output.write_frame  # looked up again once the response opens
        self._request = request
        self._route = route
        self._formatter = formatter
        self._policy = policy
        self._pool = pool
        self._on_end = on_end
        self._loop = asyncio.get_running_loop()
        self._upstream: UpstreamConnection | None = None
        self._target: Target | None = None
        # each attempt's body gets a reader of its own: an SSE parser, or for a provider
        # that streams NDJSON a line reader, which takes every read by the shortcuts
        self._parser: EventReader = _NO_BODY_YET
        self._adapter: StreamAdapter | None = None
        self._held: list[NormalizedEvent] = []  # non-content events before the commit
        self._position = 0  # the route's target being tried
        self._tries = 0  # attempts made on it
        self._pumping = False  # a body is flowing; _settle ends it
        self._task: asyncio.Task[None] | None = None
        self._wheel = wheel_for(self._loop)
        self._heartbeat: Deadline | None = None
        self._events_seen = 0  # self.events at the last heartbeat check
        self._quiet_checks = 0  # checks since the last write
        self.started = self._loop.time()
        self.first_token_at: float | None = None
        self.events = 0
        self._silent_events = 0  # upstream events that made no frame (pings, held ones)
        self.attempts = 0
        self.status = "ok"
        self.reason = ""
        self.usage: Usage | None = None
        self.key: str | None = None  # the name of the API key it serves (never the key)

    def __repr__(self) -> str:
        return (f"<Relay {self.id} state={self.state.value} attempts={self.attempts} "
                f"events={self.events}>")

    @property
    def progress(self) -> int:
        """Upstream events so far, for the upstream's idle limit: those that made a
        frame (counted anyway, so a token pays nothing more) and those that made none.
        Bytes that carry no event are no progress."""
        return self.events + self._silent_events

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._output.bind(self.on_client_gone, self._overflow)
        if self._output.streams_at_once:
            self._open_response()
        self._schedule_heartbeat()
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
            if self.state is not RelayState.ENDED:
                self._try_target(0.0)
        except asyncio.CancelledError:
            pass

    def _begin_attempt(self) -> UpstreamRequest:
        """Count an attempt on the current target and build its request (which lives
        only until it is sent, not for the stream's life: orjson's buffer for it is
        ~4 KiB, a third of an idle stream's memory)."""
        target = self._route[self._position]
        self._tries += 1
        self.attempts += 1
        self._target = target
        return target.provider.build_request(self._request, target.model)

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
        if self.state is RelayState.ENDED:  # given up while connecting
            self._pool.discard(upstream)
        else:
            self._await_head(upstream)

    def _await_head(self, upstream: UpstreamConnection) -> None:
        """The request is out: the head's arrival (:meth:`_on_head`) takes it on."""
        self._upstream = upstream
        upstream.head().add_done_callback(self._on_head)

    def _not_sent(self, exc: Exception) -> None:
        """The attempt's request could not be sent: try on, or end the stream."""
        if isinstance(exc, UpstreamError):
            self._advance(exc)
        elif isinstance(exc, RequestError):  # this provider cannot take the request
            refused = UpstreamError(str(exc), status=exc.status, retryable=False)
            refused.error_type = exc.error_type
            self._advance(refused)
        else:  # a bug must end this stream only, cleanly
            self._internal_error(exc)

    def _on_head(self, head: asyncio.Future[ResponseHead]) -> None:
        upstream, target = self._upstream, self._target
        if head.cancelled() or upstream is None or target is None or \
                head is not upstream.head() or self.state is RelayState.ENDED:
            return  # the attempt was given up meanwhile (client gone, shutdown)
        try:
            error = head.exception()
            if isinstance(error, UpstreamError):
                self._advance(error)
            elif error is not None:
                raise error
            elif head.result().status == 200 and \
                    is_event_stream(head.result().headers, target.provider.media_types):
                self._start_pump(target, upstream)
            else:
                self._spawn(self._status_error(target, head.result(), upstream.read_body()))
        except Exception as exc:  # a bug must end this stream only, cleanly
            self._internal_error(exc)

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
        """Let the body flow to the client; :meth:`_settle` hears how it ended."""
        self._open_response()
        policy = self._policy  # a provider whose body is no SSE names its own reader
        self._parser = target.provider.new_body_reader(policy.max_event_bytes,
                                                       policy.max_bytes_without_event)
        self._adapter = target.provider.new_adapter()
        self._pumping = True
        self._output.attach_flow(upstream.pause_reading, upstream.resume_reading)
        upstream.stream(self)

    def _advance(self, error: UpstreamError | None) -> None:
        """An attempt ended (``error`` None: the provider finished): end the stream, or
        start the next attempt, on this target or the next one of the route."""
        self._output.detach_flow()
        self._drop_upstream()
        if self.state is RelayState.ENDED:
            return
        if error is None:
            self.complete()
            return
        if self.state is RelayState.COMMITTED:  # too late to retry: the client saw text
            self._fail(error)
            return
        logger.info("stream %s: attempt %d on %s failed: %s", self.id, self.attempts,
                    self._route[self._position].provider.settings.name, self._public(error)[1])
        if error.retryable and not self._retry_after_too_long(error) and \
                self._tries <= self._policy.max_retries:
            self._try_target(self._backoff(self._tries, error))
            return
        self._position += 1
        self._tries = 0
        if self._position < len(self._route):
            self._try_target(0.0)
        else:
            self._fail(error)

    def _internal_error(self, exc: Exception) -> None:
        # not exc_info: the message may hold provider text, and a key with it
        logger.error("relay %s failed: %s", self.id,
                     describe_exception(exc, self._policy.redact))
        self._drop_upstream()
        self._fail(ProviderError(f"internal error: {type(exc).__name__}", retryable=False))

    # -- the hot path: upstream body bytes to client frames ------------------------

    def on_body(self, data: bytes) -> None:
        adapter = self._adapter
        assert adapter is not None
        frames: list[bytes] = []
        try:
            line = self._parser.feed_data_line(data)
            if line is not None:  # one whole "data:" event: the per-token read
                result = adapter.feed_message(line)
                if type(result) is not str:
                    self._frames(result, frames)
                elif self.state is _COMMITTED:  # a text delta: the fewest steps
                    self.events += 1
                    self._write_frame(self._formatter.text(result))
                    return
                else:
                    self._frame(TextDelta(result), frames)
            elif (lines := self._parser.feed_data_lines(data)) is not None:
                for line in lines:  # several whole "data:" events: a stream's last read
                    result = adapter.feed_message(line)
                    if type(result) is str:
                        self._frame(TextDelta(result), frames)
                    else:
                        self._frames(result, frames)
                    if adapter.finished:
                        break
            else:
                for sse in self._parser.feed(data):
                    self._frames(adapter.feed(sse.event, sse.data), frames)
                    if adapter.finished:
                        break
        except Exception as exc:  # whatever the provider sent: this stream ends, cleanly
            self._fault(exc, data, frames)
            return
        self._flush(frames)
        if adapter.finished and self.state is not RelayState.ENDED:
            self._settle(None)

    def _fault(self, exc: Exception, data: bytes, frames: list[bytes]) -> None:
        """A read could not be relayed whole: what came before the fault is the
        client's (``frames``, and the events the parser completed before a bound broke),
        then the stream ends, or the body is read as the error it is."""
        adapter = self._adapter
        assert adapter is not None
        if isinstance(exc, RemoteProtocolError) and exc.read_before:
            try:
                for sse in exc.read_before:
                    self._frames(adapter.feed(sse.event, sse.data), frames)
                    if adapter.finished:  # the provider's end came before the fault
                        self._flush(frames)
                        self._settle(None)
                        return
            except Exception as later:  # an event before the bound was malformed itself
                exc = later
        self._flush(frames)
        if type(exc) is NotAnEventStream:
            self._not_a_stream(data)
        else:
            self._settle(self._body_fault(exc))

    def _not_a_stream(self, data: bytes) -> None:
        """The 200 labelled an event stream is a JSON error or a page (its first read
        says so): read on as an error body, of which ``data`` is the start, and judged
        as one (a 200 of another content type is judged so too): the provider's own
        kind of error decides, and a page is not retried (the same page would come)."""
        upstream, target = self._upstream, self._target
        assert upstream is not None and target is not None
        self._pumping = False
        self._spawn(self._status_error(target, upstream.head().result(),
                                       upstream.read_body(start=data)))

    def _body_fault(self, exc: Exception) -> UpstreamError:
        if not isinstance(exc, SSEServerError):  # the adapter met data of a wrong shape
            target = self._target
            logger.warning("stream %s: an event from %s could not be read: %s", self.id,
                           target.provider.settings.name if target else None,
                           describe_exception(exc, self._policy.redact))
        return body_fault(exc)

    def _frames(self, events: list[NormalizedEvent], frames: list[bytes]) -> None:
        if not events:
            self._silent_events += 1
        for event in events:
            self._frame(event, frames)

    def _frame(self, event: NormalizedEvent, frames: list[bytes]) -> None:
        if type(event) is ErrorEvent:
            error = ProviderError(event.message, retryable=event.retryable, status=event.status)
            error.error_type = event.type
            raise error
        if self.state is not RelayState.COMMITTED:
            if not isinstance(event, CONTENT_EVENTS):
                self._held.append(event)
                self._silent_events += 1
                return
            self._commit(frames)
        if type(event) is Usage:
            self.usage = event
        frame = self._formatter.event(event)
        if frame:
            self.events += 1
            frames.append(frame)

    def _commit(self, frames: list[bytes]) -> None:
        self._open_response()
        self.state = RelayState.COMMITTED
        self.first_token_at = self._loop.time()
        target = self._target
        assert target is not None
        frames.append(self._formatter.start({
            "stream_id": self.id, "provider": target.provider.settings.name,
            "model": target.model}))
        self.events += 1
        held, self._held = self._held, []
        for event in held:
            self._frame(event, frames)

    def _flush(self, frames: list[bytes]) -> None:
        if frames:
            self._output.write(frames)

    def on_body_end(self) -> None:
        adapter = self._adapter
        if adapter is not None and not adapter.finished and self._pumping:
            frames: list[bytes] = []
            try:  # the last event, if only its blank line is missing
                for sse in self._parser.end():
                    self._frames(adapter.feed(sse.event, sse.data), frames)
            except Exception as exc:
                self._flush(frames)
                self._settle(self._body_fault(exc))
                return
            self._flush(frames)
        if adapter is not None and adapter.finished:
            self._settle(None)
        else:
            self._settle(UpstreamError("provider ended the stream before it was complete"))

    def on_body_error(self, error: UpstreamError) -> None:
        self._settle(error)

    def _settle(self, error: UpstreamError | None) -> None:
        """The body ended, well or not. The attempt moves on in the next loop pass, not
        here: this runs inside the upstream connection's own callbacks."""
        if self._pumping:
            self._pumping = False
            self._loop.call_soon(self._pump_done, error)

    def _pump_done(self, error: UpstreamError | None) -> None:
        try:
            self._advance(error)
        except Exception as exc:  # a bug must end this stream only, cleanly
            self._internal_error(exc)

    # -- ending --------------------------------------------------------------------

    def _fail(self, error: UpstreamError, status: str = "error") -> None:
        """End the stream with a typed error: JSON before the head, events after it."""
        if self.state is RelayState.ENDED:
            return
        self.status = status
        error_type, message = self._public(error)
        self.reason = message
        if self.state is RelayState.STARTING:
            self._respond_error(error, error_type, message)
            self._end()
            return
        frames: list[bytes] = []
        if self.state is RelayState.OPEN:
            self._commit(frames)
        usage = self._adapter.usage_so_far() if self._adapter is not None else None
        if self.usage is None and usage is not None:
            self._frame(usage, frames)  # a stream that ends early reports what it used
        frames.append(self._formatter.event(ErrorEvent(
            type=error_type, message=message, retryable=error.retryable,
            status=error.status)))
        self.events += 1
        self._finish(frames)

    def _finish(self, frames: list[bytes]) -> None:
        frames.append(self._formatter.end())
        self.events += 1
        self._output.finish(frames)  # past any bound: every reader gets a proper ending
        self._end()

    def complete(self) -> None:
        """The provider finished normally: send what is held, then the end frame."""
        if self.state is RelayState.ENDED:
            return
        frames: list[bytes] = []
        if self.state is not RelayState.COMMITTED:
            self._commit(frames)
        self._finish(frames)

    def shutdown(self, message: str) -> None:
        """The server is draining and out of time: end with a retryable error (a 503
        with Retry-After, if the response has not begun)."""
        self._stop_with(ShuttingDown(message, retry_after=DRAIN_RETRY_AFTER))

    def _stop_with(self, error: UpstreamError, status: str = "error") -> None:
        self._cancel_task()
        self._drop_upstream()
        if self.state is not RelayState.ENDED:
            self._fail(error, status)

    def on_client_gone(self) -> None:
        """The last reader left and the stream's policy is to stop generating."""
        if self.state is RelayState.ENDED:
            return
        self.status = "cancelled"
        self.reason = "client disconnected"
        self._cancel_task()
        self._drop_upstream()
        self._end()

    def cancel(self, message: str = "the stream was cancelled") -> None:
        """Stop generating (the stop button): readers get a ``cancelled`` error."""
        self._stop_with(typed_error("cancelled", message), status="cancelled")

    def _overflow(self) -> None:
        # the stream reached its memory bound: end it rather than grow (DESIGN.md §5)
        self._stop_with(typed_error("stream_too_large", "the stream passed its size limit"))

    def _end(self) -> None:
        self.state = RelayState.ENDED
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        self._settle(None)
        self._output.unbind()
        self._log()
        if self._on_end is not None:
            self._on_end(self)

    def _cancel_task(self) -> None:
        if self._task is not None and not self._task.done() and \
                self._task is not asyncio.current_task():
            self._task.cancel()

    def _drop_upstream(self) -> None:
        """Give the upstream connection back: to the pool if its response ended
        cleanly, closed otherwise (which also stops the provider generating)."""
        upstream, self._upstream = self._upstream, None
        if upstream is None:
            return
        if upstream.state is State.DONE:
            self._pool.release(upstream)
        elif upstream.state is State.BODY and self._adapter is not None and \
                self._adapter.finished:
            # The provider said its last word; only the end of the HTTP body is still on
            # its way. Let it arrive (briefly) so the connection can serve again.
            _Drain(upstream, self._pool, self._loop)
        else:
            self._pool.discard(upstream)

    # -- the client response -------------------------------------------------------

    def _open_response(self) -> None:
        if self.state is RelayState.STARTING:
            self.state = RelayState.OPEN
            self._output.open(self.id, self._formatter.content_type,
                              self._formatter.preamble)
            self._write_frame = self._output.write_frame

    def _respond_error(self, error: UpstreamError, error_type: str, message: str) -> None:
        status, headers = client_status(error)
        self._output.respond_error(status, headers, {"error": {
            "type": error_type, "message": message}}, error.status)

    def _public(self, error: UpstreamError) -> tuple[str, str]:
        """The error's type and message as a client or the log may see them: every
        configured key, and anything shaped like one, redacted (a provider writes some
        of both). The one way error text leaves the relay."""
        redact = self._policy.redact
        return redact(error.error_type, MAX_ERROR_TYPE_CHARS), redact(str(error))

    # Heartbeats: a check every half interval sees whether an event went out since the
    # one before; two quiet checks in a row mean a heartbeat is due. No silence lasts
    # longer than the interval, and a token costs no clock reading.

    def _schedule_heartbeat(self) -> None:
        interval = self._policy.heartbeat_interval
        if interval > 0:
            self._heartbeat = self._wheel.call_later(interval / 2, self._on_heartbeat)

    def _on_heartbeat(self) -> None:
        self._heartbeat = None
        if self.state is RelayState.ENDED:
            return
        if self.events != self._events_seen:  # written since the last check
            self._events_seen = self.events
            self._quiet_checks = 1  # the write may be up to half an interval old
        else:
            self._quiet_checks += 1
        if self._quiet_checks >= 2:
            self._open_response()  # the head goes out when the first heartbeat is due
            self._output.heartbeat(self._formatter.heartbeat)
            self._quiet_checks = 0
        self._schedule_heartbeat()

    def _backoff(self, attempt: int, error: UpstreamError | None) -> float:
        if error is not None and error.retry_after is not None:
            return max(0.0, error.retry_after)
        ceiling = min(self._policy.backoff_max, self._policy.backoff_initial * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter spreads retry storms

    def _retry_after_too_long(self, error: UpstreamError) -> bool:
        return error.retry_after is not None and error.retry_after > self._policy.max_retry_after

    def _log(self) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        now = self._loop.time()
        target = self._target
        record: dict[str, Any] = {
            "event": "stream_end", "id": self.id, "key": self.key, "status": self.status,
            "provider": target.provider.settings.name if target else None,
            "model": target.model if target else self._request.model,
            "ttft_ms": round((self.first_token_at - self.started) * 1000, 2)
            if self.first_token_at else None,
            "duration_ms": round((now - self.started) * 1000, 2), "events": self.events,
            "bytes": self._output.bytes_sent,
            "attempts": self.attempts, "reason": self.reason,
        }
        logger.info(orjson.dumps(record).decode())


class _Drain:
    """Waits for the end of a finished stream's HTTP body, then pools the connection."""

    # Long enough for the last chunk to follow [DONE], short enough not to hold a slot.
    GRACE = 1.0
    __slots__ = ("_conn", "_pool", "_timer")
    progress = 0  # the grace timer bounds the wait, not the idle limit

    def __init__(self, conn: UpstreamConnection, pool: ConnectionPool,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._pool = pool
        self._timer = loop.call_later(self.GRACE, self.on_body_error, None)
        conn.stream(self)
        conn.resume_reading()

    def on_body(self, data: bytes) -> None:
        pass

    def on_body_end(self) -> None:
        self._timer.cancel()
        self._pool.release(self._conn)

    def on_body_error(self, error: UpstreamError | None) -> None:
        self._timer.cancel()
        self._pool.discard(self._conn)
