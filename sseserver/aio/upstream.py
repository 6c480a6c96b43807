"""The upstream HTTP/1.1 client: one request, its response head, then a pushed body.

:func:`sseserver.aio.connect.open_upstream` connects (plain TCP or TLS), sends one
request and returns an :class:`UpstreamConnection`. The caller hears of the head through
:meth:`~UpstreamConnection.await_head` (or awaits :meth:`~UpstreamConnection.head`);
for a streamed 200 it then calls :meth:`~UpstreamConnection.stream` with a :class:`BodySink`
and receives body bytes from the protocol callbacks, with no task per chunk. Reading
can be paused and resumed, which is how a slow client slows the provider down.
Nothing here parses HTTP: core/http_client.py encodes the request and reads the
response head, core/chunked.py decodes the body.

Timeouts (connect, response head, idle gap, total) run on one timer per connection.
The whole response head has one deadline, ``first_byte`` after the request went out
(Go's ResponseHeaderTimeout): a head trickled a byte at a time does not move it. In
the body only progress counts against the idle limit, and the sink says what progress
is (the relay counts events: bytes that carry none, such as comment lines, do not keep
a stream alive); a read touches no clock, and the timer asks the sink a few times per
idle limit whether it moved on. A check measures what is left of each limit and is
set again, so one due early does no harm: the connect limit's deadline becomes a new
connection's first check, and a check left set after a response serves the next
request on the connection (between responses it does nothing), so a request sets a
deadline of its own only when the pending one is due later than it needs.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sseserver.aio.wheel import Deadline, TimerWheel, wheel_for
from sseserver.config import CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT, IDLE_TIMEOUT, TOTAL_TIMEOUT
from sseserver.core.chunked import BodyDecoder, UntilCloseDecoder
from sseserver.core.http_client import (
    ResponseHead,
    ResponseHeadParser,
    body_decoder,
    encode_request,
    first_final_head,
)
from sseserver.errors import RemoteProtocolError, UpstreamClosed, UpstreamError, UpstreamTimeout

# An error body is read only to show its message; more is never needed.
MAX_ERROR_BODY = 64 * 1024
# Checks of the sink's progress per idle limit: a silence ends within 1 + 1/4 of the
# limit (never before it), for four timer callbacks per limit and stream.
IDLE_CHECKS = 4


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = CONNECT_TIMEOUT
    first_byte: float = FIRST_BYTE_TIMEOUT
    idle: float = IDLE_TIMEOUT
    total: float = TOTAL_TIMEOUT
    # A request's first check (UpstreamConnection.send_request), worked out once here,
    # not for each connection: due by the head's deadline and within a step of the
    # idle limit both (the head's arrival then needs no check of its own).
    first_check: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "first_check",
                           min(self.first_byte, self.idle / IDLE_CHECKS, self.total))


class BodySink(Protocol):
    @property
    def progress(self) -> int:
        """A count that grows whenever the body makes progress that keeps the response
        alive (the relay counts events; a sink of plain bytes counts bytes)."""
        ...

    def on_body(self, data: bytes) -> None: ...

    def on_body_end(self) -> None: ...

    def on_body_error(self, error: UpstreamError) -> None: ...


class HeadListener(Protocol):
    """Who waits for a response head (:meth:`UpstreamConnection.await_head`)."""

    def on_head(self, head: ResponseHead) -> None:
        """The final head is read. Called in the connection's own callback, before any
        body byte goes anywhere: :meth:`~UpstreamConnection.stream` or
        :meth:`~UpstreamConnection.read_body` called here gets the body from its start."""
        ...

    def on_head_error(self, error: UpstreamError) -> None:
        """The response ended before its head (timeout, closed, invalid HTTP); the
        connection is closed already."""
        ...


class _HeadFuture:
    """A head listener that fills a future, for a caller that awaits the head."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[ResponseHead]) -> None:
        self.future = future

    def on_head(self, head: ResponseHead) -> None:
        if not self.future.done():
            self.future.set_result(head)

    def on_head_error(self, error: UpstreamError) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class State(enum.Enum):
    CONNECTING = "connecting"
    AWAITING_HEAD = "awaiting-head"
    BODY = "body"
    DONE = "done"  # the response ended; the connection may be recycled
    IDLE = "idle"  # recycled: in the pool, ready for the next request
    FAILED = "failed"


# Members as module names: reading one through its enum class costs ~1k instructions
# in CPython 3.11 (the metaclass's attribute lookup), a global ~0.1k.
_CONNECTING, _AWAITING_HEAD, _BODY, _DONE, _IDLE, _FAILED = \
    State.CONNECTING, State.AWAITING_HEAD, State.BODY, State.DONE, State.IDLE, State.FAILED


class UpstreamConnection(asyncio.Protocol):
    # Slots: a token's read touches this object, one of thousands; a dict of its
    # attributes would be more memory to miss in the cache.
    __slots__ = ("_decoder", "_ended", "_error", "_head_listener", "_head_parser",
                 "_keep_alive", "_last_activity", "_loop", "_pending", "_progress_seen",
                 "_response_start", "_sink", "_started", "_timeouts", "_timer", "_timer_due",
                 "_transport", "_wheel", "bytes_received", "idle_since", "on_idle_lost",
                 "origin", "requests", "response_head", "state")

    def __init__(self, timeouts: Timeouts, loop: asyncio.AbstractEventLoop,
                 origin: str = "", wheel: TimerWheel | None = None) -> None:
        self._loop = loop
        self._timeouts = timeouts
        self._transport: asyncio.Transport | None = None
        self.state = _CONNECTING
        # the loop's wheel: given by the opener that has it at hand, else looked up
        self._wheel = wheel if wheel is not None else wheel_for(loop)
        self._timer: Deadline | None = None
        self._timer_due = 0.0  # when _timer is due (its when(), read once it is set)
        self.bytes_received = 0
        self.requests = 0
        self.origin = origin  # scheme://authority: the pool's key
        self.idle_since = 0.0
        # Called with this connection if it breaks while idle (its pool forgets it).
        self.on_idle_lost: Callable[[UpstreamConnection], None] | None = None
        # The per-request state, as recycle() sets it again for each next request.
        self._head_listener: HeadListener | None = None
        self.response_head: ResponseHead | None = None
        # Made only for a head that does not come whole in the response's first read
        # (a head nearly always does: see _read_head).
        self._head_parser: ResponseHeadParser | None = None
        self._sink: BodySink | None = None
        self._pending: list[bytes] = []
        self._ended = False
        self._error: UpstreamError | None = None
        self._decoder: BodyDecoder | None = None
        self._keep_alive = False
        # send_request sets these three: the clocks of a request count from it
        self._started = self._last_activity = 0.0
        self._response_start = 0
        self._progress_seen = 0

    def __repr__(self) -> str:
        return (f"<UpstreamConnection {self.origin} state={self.state.value} "
                f"requests={self.requests} received={self.bytes_received}>")

    @property
    def reusable(self) -> bool:
        return self.state is _IDLE and self._transport is not None and \
            not self._transport.is_closing()

    @property
    def keep_alive(self) -> bool:
        """Whether the response allows another request on this connection: HTTP/1.1,
        no ``Connection: close``, a delimited body and nothing sent after it."""
        decoder = self._decoder
        return self._keep_alive and (decoder is None or not decoder.trailing)

    def recycle(self) -> bool:
        """After a complete response: make ready for the next request if keep-alive
        allows (HTTP/1.1, no Connection: close, a delimited body with nothing after
        it). False means close it."""
        decoder = self._decoder
        if self.state is not _DONE or not self._keep_alive or decoder is None or \
                decoder.trailing:
            return False
        self.state = _IDLE
        self.idle_since = self._loop.time()
        # The per-request state made fresh for the next request, as __init__ sets it
        # (send_request sets the request's clocks). A response that ended (DONE) left
        # no head listener (told at its head) and no error (a failed one never ends):
        # only the fields it may have set are set again.
        self.response_head = None
        self._head_parser = None
        self._sink = None
        if self._pending:  # body bytes that came before stream(): none once it came
            self._pending = []
        self._ended = False
        self._decoder = None
        self._keep_alive = False
        self._progress_seen = 0
        transport = self._transport  # reusable, idle as it now is
        return transport is not None and not transport.is_closing()

    # -- asyncio callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's is no subclass of asyncio.Transport: taken as one without cast's call
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        decoder = self._decoder
        if decoder is not None:  # the body: first, as the commonest case
            try:
                pieces = decoder.feed(data)
            except RemoteProtocolError as exc:
                self._malformed_body(exc, data)
                return
            sink = self._sink
            if sink is not None and len(pieces) == 1:  # one whole chunk: the per-token read
                sink.on_body(pieces[0])
            else:
                self._deliver(pieces)
            if decoder.done:
                self._on_end()
        elif self.state is _IDLE:  # nothing may arrive between responses
            self._idle_lost()
            self.close()
        elif self.state is _AWAITING_HEAD:
            self._read_head(data)
        elif self.state is _CONNECTING:
            self._fail(UpstreamClosed("provider sent invalid HTTP: a response before the "
                                      "request", retryable=True))

    def eof_received(self) -> bool | None:
        if self.state is _IDLE:  # the provider closed a kept-alive connection
            self._idle_lost()
            return False
        if self._decoder is not None:
            self._on_body_closed()
        elif self._head_parser is not None and self._head_parser.buffered:
            self._fail(UpstreamClosed("provider closed the connection in the response head"))
        else:
            self._fail(UpstreamClosed("provider closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self.state is _IDLE:
            self._idle_lost()
        if self.state in (_DONE, _FAILED):
            self.state = _FAILED
            return
        self._fail(UpstreamClosed(
            "provider closed the connection before the response ended"
            + (f": {exc}" if exc else "")))

    def _idle_lost(self) -> None:
        self.state = _FAILED
        callback, self.on_idle_lost = self.on_idle_lost, None
        if callback is not None:
            callback(self)

    # -- the caller's side ---------------------------------------------------------

    def send_request(self, method: str, target: str, host: str,
                     headers: Sequence[tuple[str, str]], body: bytes) -> None:
        """Raises :class:`LocalProtocolError` for a request that cannot be sent (see
        :func:`encode_request`); nothing is sent then."""
        assert self._transport is not None
        request = encode_request(method, target, host, headers, body)
        self.requests += 1
        self._transport.write(request)
        self.state = _AWAITING_HEAD
        # the total limit and the head's deadline count from here: a pooled connection
        # was reset when it went idle, maybe long before
        now = self._started = self._last_activity = self._loop.time()
        self._response_start = self.bytes_received
        delay = self._timeouts.first_check
        timer = self._timer
        # The check the last response left pending serves, if due no later than this
        # one must be (a check is never early in effect: it measures what is left and
        # is set again): a pooled connection's request sets and cancels no deadline.
        if timer is None or self._timer_due > now + delay:
            self._schedule_check(delay)

    def await_head(self, listener: HeadListener) -> None:
        """Tell ``listener`` of the response head, or of the error that ended the
        response before it: at once if either came already, else when it comes. One
        listener a response; a connection closed by :meth:`close` tells it nothing.

        A callback rather than a coroutine: a stream may wait minutes for its head,
        and a coroutine frame would be held all that time."""
        if self.response_head is not None:
            listener.on_head(self.response_head)
        elif self._error is not None:
            listener.on_head_error(self._error)
        elif self.state is not _FAILED:
            self._head_listener = listener

    def head(self) -> asyncio.Future[ResponseHead]:
        """The response head, to await (:meth:`await_head` as a future). Raises
        :class:`UpstreamError` (timeout, closed); cancelled by :meth:`close`."""
        future: asyncio.Future[ResponseHead] = self._loop.create_future()
        self.await_head(_HeadFuture(future))
        if self.state is _FAILED and self._error is None:
            future.cancel()
        return future

    def stream(self, sink: BodySink) -> None:
        """Deliver the body to ``sink`` from now on (bytes that came early first)."""
        self._sink = sink
        self._progress_seen = sink.progress
        if self._pending:  # (a new list only when one was filled)
            pending, self._pending = self._pending, []
            for data in pending:
                sink.on_body(data)
        if self._error is not None:
            sink.on_body_error(self._error)
        elif self._ended:
            sink.on_body_end()

    def read_body(self, limit: int = MAX_ERROR_BODY, start: bytes = b"") -> asyncio.Future[bytes]:
        """The (error) body, its first ``limit`` bytes, to await: once it has that many,
        the rest is not waited for (the connection is not reused then). ``start``: body
        bytes a sink already took (a 200 found to be no stream at its first read). The
        body goes to the collector from this call on, so nothing after it reaches the
        sink before. The future never fails."""
        body: asyncio.Future[bytes] = self._loop.create_future()
        chunks = [start]

        class _Collect:
            progress = len(start)  # bytes: a plain body has no events

            def on_body(self, data: bytes) -> None:
                if self.progress < limit:
                    chunks.append(data)
                    self.progress += len(data)
                    if self.progress >= limit:
                        self.on_body_end()

            def on_body_end(self) -> None:
                if not body.done():
                    body.set_result(b"".join(chunks)[:limit])

            def on_body_error(self, error: UpstreamError) -> None:
                self.on_body_end()

        self.stream(_Collect())
        return body

    def pause_reading(self) -> None:
        if self._transport is not None and self._transport.is_reading():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_reading() and \
                not self._transport.is_closing():
            self._transport.resume_reading()
            self._last_activity = self._loop.time()  # a pause is not upstream idleness

    def close(self) -> None:
        """Abort the request: the provider sees the connection go at once."""
        self._cancel_timer()
        self.state = _FAILED
        listener, self._head_listener = self._head_listener, None
        if type(listener) is _HeadFuture:
            listener.future.cancel()
        if self._transport is not None:
            self._transport.abort()

    # -- internals -----------------------------------------------------------------

    def _read_head(self, data: bytes) -> None:
        """Interim 1xx heads are dropped; body bytes that came with the head go to the
        body decoder. A final head whole in the response's first read, as nearly every
        one comes, is read without a parser (first_final_head, the parser's own first
        step); a parser takes any other from that read on, and reads it again."""
        parser = self._head_parser
        try:
            if parser is None and (first := first_final_head(data)) is not None:
                head, rest = first
            else:
                if parser is None:
                    parser = self._head_parser = ResponseHeadParser()
                found = parser.feed(data)
                if found is None:
                    return
                head, rest = found, parser.rest
        except RemoteProtocolError as exc:
            self._fail(UpstreamClosed(f"provider sent invalid HTTP: {exc}"
                                      f"{self._where(exc, data)}", retryable=True))
            return
        decoder = self._on_head(head)
        # even with nothing after the head: an empty body (204, Content-Length: 0)
        # ends right here; unless the head's listener closed the connection. A head
        # alone in its read, as a stream's mostly is, into a body not ended: nothing
        # to decode (a fresh decoder fed nothing gives nothing and stays as it is).
        if self.state is _BODY and (rest or decoder.done):
            self._decode(decoder, rest)

    def _decode(self, decoder: BodyDecoder, data: bytes) -> None:
        try:
            pieces = decoder.feed(data)
        except RemoteProtocolError as exc:
            self._malformed_body(exc, data)
            return
        # One piece for the whole read: its events go out in one client write.
        self._deliver(pieces)
        if decoder.done:
            self._on_end()

    def _malformed_body(self, exc: RemoteProtocolError, data: bytes) -> None:
        self._deliver(exc.read_before)  # the chunks before the fault go first
        self._fail(UpstreamClosed(f"provider sent a malformed body: {exc}"
                                  f"{self._where(exc, data)}"))

    def _deliver(self, pieces: list[bytes]) -> None:
        """A read's body pieces, as one: a burst's events go out in one client write."""
        if not pieces:
            return
        piece = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if self._sink is not None:
            self._sink.on_body(piece)
        else:
            self._pending.append(piece)

    def _where(self, exc: RemoteProtocolError, data: bytes) -> str:
        """Where in the response the fault lies: ``data`` is what the failed call got,
        the last bytes received."""
        if exc.offset is None:
            return " (in the response head)" if self._decoder is None else ""
        start = self.bytes_received - self._response_start - len(data)
        return f" at byte {start + exc.offset} of the response"

    def _on_body_closed(self) -> None:
        if isinstance(self._decoder, UntilCloseDecoder):
            self._keep_alive = False
            self._on_end()
        else:
            self._fail(UpstreamClosed("provider closed the connection before the body ended"))

    def _on_head(self, head: ResponseHead) -> BodyDecoder:
        self.state = _BODY
        self._last_activity = self._loop.time()  # the idle limit starts here
        decoder = self._decoder = body_decoder(head)
        keep_alive = head.http_version == "1.1" and type(decoder) is not UntilCloseDecoder
        if keep_alive and "connection" in head.headers:
            # every line: "close" in any one (a loop, not any() over a generator that
            # yields once a field)
            for name, value in head.fields:
                if name == "connection" and "close" in value.lower():
                    keep_alive = False
                    break
        self._keep_alive = keep_alive
        self.response_head = head
        listener, self._head_listener = self._head_listener, None
        if listener is not None:
            listener.on_head(head)
        return decoder

    def _on_end(self) -> None:
        if self.state is not _BODY:  # closed by a sink while it read the body
            return
        self.state = _DONE
        self._ended = True
        # The check stays set: it does nothing between responses, and the next
        # request on this connection is checked by it (see send_request); closing
        # the connection cancels it.
        if self._sink is not None:
            self._sink.on_body_end()

    def _fail(self, error: UpstreamError) -> None:
        if self.state in (_DONE, _FAILED):
            return
        self.state = _FAILED
        self._error = error
        self._cancel_timer()
        if self._transport is not None:
            self._transport.abort()
        if self.response_head is None:
            listener, self._head_listener = self._head_listener, None
            if listener is not None:
                listener.on_head_error(error)
        elif self._sink is not None:
            self._sink.on_body_error(error)

    def adopt_check(self, deadline: Deadline) -> None:
        """Take ``deadline`` as this connection's pending check (the connect limit's,
        due before any limit of a request), unless it ran or was cancelled already."""
        if self._timer is None and deadline.redirect(self._check_deadlines):
            self._timer = deadline
            self._timer_due = deadline.when()
        else:
            deadline.cancel()

    def _schedule_check(self, delay: float) -> None:
        self._cancel_timer()
        timer = self._timer = self._wheel.call_later(delay, self._check_deadlines)
        self._timer_due = timer.when()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle_step(self) -> float:
        return self._timeouts.idle / IDLE_CHECKS

    def _check_deadlines(self) -> None:
        self._timer = None
        state = self.state
        if state is not _AWAITING_HEAD and state is not _BODY:
            return  # between responses: nothing to time (the next request sets it again)
        now = self._loop.time()
        timeouts = self._timeouts
        total_left = self._started + timeouts.total - now
        if total_left <= 0:
            self._fail(UpstreamTimeout(
                f"provider stream exceeded the total timeout of {timeouts.total:g} s"))
        elif state is _AWAITING_HEAD:
            self._check_head(now, total_left)
        else:
            self._check_progress(now, total_left)

    def _check_head(self, now: float, total_left: float) -> None:
        """The head has one deadline from the request: bytes of it do not move it."""
        head_left = self._last_activity + self._timeouts.first_byte - now
        if head_left <= 0:
            self._fail(UpstreamTimeout(
                f"no response head from the provider within {self._timeouts.first_byte:g} s "
                "(first byte timeout)"))
        else:  # within a step of the idle limit: the head may come first
            self._schedule_check(min(head_left, total_left, self._idle_step()))

    def _check_progress(self, now: float, total_left: float) -> None:
        """In the body: silence is no progress of the sink's for the idle limit, while
        reading (a pause is the client's doing, not the provider's)."""
        sink = self._sink
        if sink is not None and sink.progress != self._progress_seen:
            self._progress_seen = sink.progress
            self._last_activity = now  # at most one step late: never an early timeout
        transport = self._transport
        if transport is None or not transport.is_reading():
            self._last_activity = now
        limit = self._timeouts.idle
        if self._last_activity + limit <= now:
            self._fail(UpstreamTimeout(f"no next event from the provider within {limit:g} s"))
        else:
            self._schedule_check(min(total_left, self._idle_step()))
