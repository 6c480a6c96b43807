"""The downstream HTTP/1.1 server protocol.

One :class:`HTTPConnection` per client socket. It reads requests with h11, through
core/h11_server.py's reader (keep-alive and pipelining, answered in order; h11's
verdicts and status hints, its errors turned into ours there), enforces the limits a
protocol parser leaves to us (reference/http-hardening.md, core/request_checks.py),
hands each complete request to the application's ``handler`` and offers two ways to
answer: :meth:`HTTPConnection.respond` for a whole response, or
:meth:`HTTPConnection.start_stream` and a :class:`StreamWriter` for a streamed one.
Answering is :class:`~sseserver.aio.http_responses.Responding`'s (written by hand:
the per-token path); fairness between connections is aio/input_queue.py's. The reader
holds h11's state only while a request is read, so a connection that streams holds
none of it.

Backpressure: the transport's write-buffer limits call ``pause_writing`` and
``resume_writing``; a stream writer forwards them to the producer's ``pause`` and
``resume`` callables. While writing is paused between requests, no further request is
taken (a client that pipelines and never reads gets no more answers queued). A client
that stays paused past the slow-consumer timeout, or lets more than
``max_write_buffer`` bytes pile up (whole responses and streamed bodies alike), is
disconnected.

Client input never puts a traceback in the log: a handler that raises costs its
request a 500 and logs one short line, at most once per ``_ERROR_LOG_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sseserver.aio.flow import FlowControl
from sseserver.aio.http_request import Admission, Handler, HTTPRequest, Phase
from sseserver.aio.http_responses import INTERNAL_ERROR, Responding, http_date
from sseserver.aio.input_queue import EVENTS_PER_TURN, UNBOUNDED, keep_loop_parts, loop_parts
from sseserver.aio.log_limit import RateLimitedLog
from sseserver.aio.stream_writer import StreamWriter
from sseserver.aio.wheel import Deadline
from sseserver.config import LimitsSettings as Limits
from sseserver.core.h11_server import (
    CONNECTION_CLOSED,
    END_OF_MESSAGE,
    NEED_DATA,
    PAUSED,
    ReaderState,
    RequestHead,
    RequestReader,
)
from sseserver.core.request_checks import (
    HTTPError,
    asks_close,
    awaits_continue,
    body_too_large,
    check_head,
    error_type,
    too_many_chunks,
)
from sseserver.errors import RemoteProtocolError

__all__ = ["Admission", "HTTPConnection", "HTTPRequest", "Handler", "Phase",
           "StreamWriter", "http_date"]

logger = logging.getLogger("sseserver.http")

# RFC 9110 §10.1.1: the interim answer a client that sent "Expect: 100-continue" waits
# for before its body (curl waits 1 s for it, then sends anyway).
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Lines a client can cause (a handler failing on its request): at most one of each
# kind per this many seconds.
_ERROR_LOG_INTERVAL = 10.0
_log_handler_failure = RateLimitedLog(logger, logging.ERROR, _ERROR_LOG_INTERVAL)
_log_read_failure = RateLimitedLog(logger, logging.ERROR, _ERROR_LOG_INTERVAL)

# The phases as module names: an enum member read through its class goes through
# EnumType.__getattr__'s slot in CPython 3.11 (~0.8k instructions more than a
# global), and a request reads its phase about a dozen times.
_IDLE, _READING, _RESPONDING, _CLOSED = (
    Phase.IDLE, Phase.READING, Phase.RESPONDING, Phase.CLOSED)
_READ_DONE = ReaderState.DONE


class HTTPConnection(Responding, asyncio.Protocol):
    """One client connection. Thin callbacks; decisions in small methods."""

    __slots__ = ("_admit", "_between_requests", "_body", "_body_timed",
                 "_close_after_response", "_handler", "_head_only", "_http11", "_inputs",
                 "_keep_alive", "_limits", "_loop", "_on_error", "_reader", "_reading_paused",
                 "_request",
                 "_response_started", "_slow_timer", "_timer", "_transport", "_turn_due",
                 "_wheel", "attained", "flow", "on_lost", "peer", "phase", "requests_served",
                 "response_headers", "stream")

    def __init__(
        self,
        handler: Handler,
        limits: Limits,
        on_error: Callable[[HTTPConnection, int, str], None],
        loop: asyncio.AbstractEventLoop | None = None,
        admit: Admission | None = None,
    ) -> None:
        self._handler = handler
        self._admit = admit
        self._limits = limits
        self._on_error = on_error
        self._loop = loop or asyncio.get_running_loop()
        # One reader for the connection's life: it holds no request once it is read,
        # and while the response is out, what the client sends waits in it (paused).
        self._reader = RequestReader(limits.max_head_bytes)
        self._transport: asyncio.Transport | None = None
        self.phase = _IDLE
        self.peer = ""
        self._request: HTTPRequest | None = None
        self._body: list[bytes] = []
        shared_loop, wheel, inputs = loop_parts[0]
        if shared_loop is not self._loop:
            wheel, inputs = keep_loop_parts(self._loop)
        self._wheel = wheel
        self._timer: Deadline | None = None  # head, body or keep-alive timeout
        self._reading_paused = False
        self._turn_due = False  # input is left for a later turn (waits in _inputs)
        self._inputs = inputs
        # events read since the connection was last idle (InputQueue's order): a
        # pipelining client is never idle, a client sending one request at a time is
        # between its requests
        self.attained = 0
        self._close_after_response = False
        self._keep_alive = False  # the current request allows another one after it
        self._head_only = False  # a HEAD request: the response has no body
        self._http11 = False
        self._response_started = False
        self._between_requests = False
        self._body_timed = False  # the body timeout replaced the head's
        self.flow = FlowControl()
        self._slow_timer: asyncio.TimerHandle | None = None
        self.stream: StreamWriter | None = None
        self.on_lost: Callable[[], None] | None = None
        self.requests_served = 0
        # added to every response of the current request (CORS), reset per request
        self.response_headers: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return (f"<HTTPConnection peer={self.peer} phase={self.phase.value} "
                f"served={self.requests_served} paused_writing={self.flow.paused}>")

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the connection runs on (asyncio.get_running_loop makes a system
        call each time it is asked)."""
        return self._loop

    @property
    def transport(self) -> asyncio.Transport | None:
        """The client's transport (None before the connection is made)."""
        return self._transport

    def unconsumed(self) -> bytes:
        """The bytes received from the client and not read yet: requests pipelined
        behind the one being answered, or the part received so far of a head still
        arriving (from its first byte). Between requests, all the client sent that
        the server has not answered. (While a body is read, what is already read of
        the request is not in it, nor a part-read chunk-size line.) Whoever takes the
        socket over from this connection reads these first, then the socket."""
        return self._reader.unread

    @property
    def request_in_progress(self) -> HTTPRequest | None:
        """The request whose head was read and whose body is not complete yet."""
        return self._request

    # -- asyncio callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._open(transport)

    def _open(self, transport: asyncio.BaseTransport) -> object:
        """Take the client's transport: its peer, write limits and the head timer. The
        peer's address as the transport gives it (a host and port tuple for TCP)."""
        # uvloop's transport is no asyncio.Transport subclass (and cast is a call)
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        limits = self._limits
        transport.set_write_buffer_limits(  # type: ignore[attr-defined]
            limits.write_high_water, limits.write_low_water)
        if limits.header_timeout > 0:  # no timer is set yet
            self._timer = self._wheel.call_later(limits.header_timeout, self._on_head_timeout)
        return peer

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        if reader.state is not _READ_DONE:
            if self._between_requests:
                # the first byte of the next request: from now on the head must complete
                self._between_requests = False
                self._arm_timer(self._limits.header_timeout, self._on_head_timeout)
            if not self._turn_due and not self.flow.paused:
                inputs = self._inputs
                bound = inputs.read_bound(self.attained)
                if bound >= 0:
                    try:  # as _process_events does, without its frame: every read
                        done = self._read_events(bound)
                    except Exception as exc:  # a bug: see _read_failed
                        done = self._read_failed(exc)
                    inputs.spend(done)
                else:
                    self._next_turn()
                return
        # Not to be read now: a response is in progress, earlier input waits for the
        # next turn, or the client is not reading our answers. Stop reading past the
        # cap (a pipelined flood), and the kernel then pushes back.
        if reader.buffered > self._limits.max_pipelined_bytes:
            self._pause_reading()

    def eof_received(self) -> bool | None:
        # A client that half-closes while we stream to it is gone in practice (browsers
        # and SDKs never half-close); treating it as a disconnect lets the upstream be
        # cancelled at once instead of at the next write.
        if self.phase is _RESPONDING or self._reader.state is _READ_DONE:
            return False
        self._reader.feed_eof()
        if not self._turn_due:
            self._process_events(UNBOUNDED)
        return True  # finish the response in progress, then close

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = _CLOSED
        if self._timer is not None:
            self._cancel_timer()
        if self._slow_timer is not None:
            self._cancel_slow_timer()
        if self.stream is not None:
            self.stream.closed = True
        callback, self.on_lost = self.on_lost, None
        if callback is not None:
            callback()

    def pause_writing(self) -> None:
        self.flow.pause()
        if self._slow_timer is None and self._limits.slow_consumer_timeout > 0:
            self._slow_timer = self._loop.call_later(
                self._limits.slow_consumer_timeout, self._evict, "slow consumer timeout")

    def resume_writing(self) -> None:
        self._cancel_slow_timer()
        self.flow.resume()
        if self.phase is _IDLE or self.phase is _READING:
            self._next_turn()  # input held while the client was not reading goes on

    # -- reading requests ----------------------------------------------------------

    def _process_events(self, bound: int) -> int:
        """Read the client's input for one turn of the loop (see EVENTS_PER_TURN),
        until the connection has had more than ``bound`` events since it was idle;
        the number of events read."""
        try:
            return self._read_events(bound)
        except Exception as exc:  # a bug: see _read_failed
            return self._read_failed(exc)

    def _read_failed(self, exc: Exception) -> int:
        """A bug must cost this connection, never log a traceback: one short line, a
        500 and the close. The events counted for the turn."""
        _log_read_failure("reading a request from %s failed: %s", self.peer,
                          type(exc).__name__)
        logger.debug("read failure", exc_info=True)
        self._answer_failure()
        return 1

    def _read_events(self, bound: int) -> int:
        reader = self._reader
        done = 0
        while done < EVENTS_PER_TURN:
            if self.attained > bound:  # a connection that has had fewer events waits
                break
            if self.phase is not _IDLE and self.phase is not _READING:
                return done
            if self.flow.paused:  # no new work while our answers are not read:
                return done  # resume_writing goes on
            try:
                event = reader.next_event()
            except RemoteProtocolError as exc:
                self._fail(exc.status_hint, f"malformed request: {exc}", close=True)
                return done
            if event is NEED_DATA:
                self._await_input()
                return done
            if event is PAUSED:
                self._pause_reading()
                return done
            done += 1
            self.attained += 1
            try:  # the events by how often they come (a body is one piece or more)
                if type(event) is RequestHead:
                    self._start_request(event)
                    # The body and its end as one when all of the body came with the
                    # head, as the loop would read them: room for both in this turn,
                    # still reading, answers read
                    if done + 2 <= EVENTS_PER_TURN and self.attained < bound and \
                            self.phase is _READING and not self.flow.paused:
                        body = reader.whole_body()
                        if body is not None:
                            if body:  # its piece (a Content-Length body: no chunks)
                                done += 1
                                self.attained += 1
                                if reader.body_bytes > self._limits.max_body_bytes:
                                    raise body_too_large(self._limits)
                            done += 1  # its end
                            self.attained += 1
                            self._dispatch(body)
                            if self.phase is _RESPONDING and done < EVENTS_PER_TURN and \
                                    self.attained <= bound:
                                return done  # as the next round would, answering
                elif type(event) is bytes:
                    self._add_body(event)
                elif event is END_OF_MESSAGE:
                    self._dispatch()
                elif event is CONNECTION_CLOSED:
                    self._close()
            except HTTPError as exc:
                self._fail(exc.status, str(exc), close=exc.close)
                return done
        self._next_turn()
        return done

    def _await_input(self) -> None:
        if self._request is not None and not self._body_timed:
            # The body is still on its way: from now on it must complete. (A body
            # that came with its head, as most do, never needs the timer.)
            self._body_timed = True
            self._arm_timer(self._limits.body_timeout, self._on_body_timeout)
        self._resume_reading()

    def _next_turn(self) -> None:
        """Go on reading at the next turn of the loop; read no more from the socket
        until then (the loop may deliver several reads in one turn)."""
        self._pause_reading()
        if not self._turn_due:
            self._turn_due = True
            self._inputs.add(self)

    def take_turn(self, bound: int) -> int:
        """Called by :class:`InputQueue`: read on while the connection has had at most
        ``bound`` events since it was idle; the number of events read."""
        self._turn_due = False
        return self._process_events(bound)

    def _start_request(self, head: RequestHead) -> None:
        self.phase = _READING
        headers = check_head(head, self._limits)
        target = head.target
        if "?" in target:
            path, _, query = target.partition("?")
        else:  # most targets: no query to split off
            path, query = target, ""
        self._request = HTTPRequest(head.method, path, query, headers, head.http_version,
                                    b"", self.peer, {})  # (its default_factory: a call)
        http11 = self._http11 = head.http_version == "1.1"  # chunked for a streamed body
        # RFC 9112 §9.3, as h11 decides it: HTTP/1.1 without a "close" connection option
        # ("close" as clients send it known without a call)
        connection = headers.get("connection")
        self._keep_alive = http11 and (connection is None or (
            connection != "close" and not asks_close(connection)))
        self._head_only = head.method == "HEAD"
        if self._body:  # pieces of a request that failed (kept for no one)
            self._body = []
        declared = headers.get("content-length")
        if declared is not None and int(declared) > self._limits.max_body_bytes:
            raise body_too_large(self._limits)
        self._body_timed = False
        if http11 and "expect" in headers and self._reader.buffered == 0 and \
                awaits_continue(headers, declared):
            self._continue_or_refuse(self._request)

    def _continue_or_refuse(self, request: HTTPRequest) -> None:
        """RFC 9110 §10.1.1: a client awaits 100 before its body; a request that would
        be refused anyway gets its final status at once instead (and the connection
        closes after it, the body unread). Never after the body started arriving."""
        if self._admit is not None and not self._call(self._admit, request):
            return
        if self.phase is _READING and self._transport is not None:
            self._transport.write(_CONTINUE)

    def _add_body(self, data: bytes) -> None:
        self._check_body_size()
        self._body.append(data)

    def _check_body_size(self) -> None:
        # Counted as sent (chunk framing and extensions too): the limit bounds what
        # reading the body costs, not only what it holds.
        if self._reader.body_bytes > self._limits.max_body_bytes:
            raise body_too_large(self._limits)
        if self._reader.body_chunks > self._limits.max_body_chunks > 0:
            raise too_many_chunks(self._limits)

    def _dispatch(self, body: bytes | None = None) -> None:
        """Hand the request to the handler: its body is ``body``, or else the pieces
        read."""
        request = self._request
        assert request is not None
        if body is None:
            request.body = b"".join(self._body)
            self._body = []
        else:
            request.body = body
        # the handler keeps what it needs of the request: a stream may last an hour
        self._request = None
        timer = self._timer
        if timer is not None:  # as _cancel_timer does, without its call
            timer.cancel()
            self._timer = None
        self.phase = _RESPONDING
        self.requests_served += 1
        try:  # as _call does, without its frame: every request comes here
            self._handler(request, self)
        except Exception as exc:  # a handler bug costs one request, never the process
            self._handler_failed(request, exc)

    def _call(self, handler: Callable[[HTTPRequest, HTTPConnection], object],
              request: HTTPRequest) -> object:
        try:
            return handler(request, self)
        except Exception as exc:  # a handler bug costs one request, never the process
            self._handler_failed(request, exc)
            return False

    def _handler_failed(self, request: HTTPRequest, exc: Exception) -> None:
        # one short line (the request may be a client's probe, sent in a loop); the
        # traceback only for whoever debugs
        _log_handler_failure("handler failed for %s %.80r: %s", request.method,
                             request.path, type(exc).__name__)
        logger.debug("handler failure", exc_info=True)
        if self.phase is not _IDLE:  # IDLE: it answered before it raised
            self._answer_failure()

    def _answer_failure(self) -> None:
        """A 500 and the close; the close alone once the response has begun."""
        if self.phase is not _CLOSED and not self._response_started:
            self.phase = _RESPONDING
            self.respond(500, [("content-type", "application/json")], INTERNAL_ERROR,
                         close=True)
        self._close()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    # -- answering -----------------------------------------------------------------

    def _finish_cycle(self) -> None:
        if self._close_after_response or not self._request_read():
            self._close()
            return
        # the reader goes on with the bytes that came after the request
        reader = self._reader
        reader.start_next_cycle()
        pending = reader.buffered > 0 or reader.ended
        self.phase = _IDLE
        self._request = None
        self._keep_alive = self._head_only = self._http11 = self._response_started = False
        self.response_headers = []
        if pending:
            # a pipelined request (or the end of input) is waiting: answer it in order,
            # at the next turn
            self._arm_timer(self._limits.header_timeout, self._on_head_timeout)
            self._next_turn()
        else:  # all read and answered: idle
            self.attained = 0
            self._resume_reading()
            self._between_requests = True
            self._arm_timer(self._limits.keepalive_timeout, self._on_keepalive_timeout)

    def _request_read(self) -> bool:
        """The whole request has been read (so the connection may serve another)."""
        return self._reader.state is _READ_DONE

    def _fail(self, status: int, message: str, *, close: bool) -> None:
        self._on_error(self, status, message)
        if self.phase is _CLOSED:
            return
        if self._response_started:  # too late for a status: the client sees a cut
            self._close()
            return
        self.phase = _RESPONDING
        self.respond_json(status, {"error": {"type": error_type(status), "message": message}},
                          close=close or not self._request_read())

    def _close(self) -> None:
        if self.phase is _CLOSED:
            return
        self.phase = _CLOSED
        if self._timer is not None:
            self._cancel_timer()
        if self._transport is not None:
            self._transport.close()

    def _evict(self, reason: str) -> None:
        self._cancel_slow_timer()  # evicted by the cap, the timer would log it again
        logger.info("closing %s: %s", self.peer, reason)
        self.abort()

    # -- timers --------------------------------------------------------------------

    def _arm_timer(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        if delay > 0:
            self._timer = self._wheel.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _cancel_slow_timer(self) -> None:
        if self._slow_timer is not None:
            self._slow_timer.cancel()
            self._slow_timer = None

    def _on_head_timeout(self) -> None:
        self._timer = None
        if self.phase in (_IDLE, _READING):
            self._fail(408, "request head not received in time", close=True)

    def _on_body_timeout(self) -> None:
        self._timer = None
        if self.phase is _READING:
            self._fail(408, "request body not received in time", close=True)

    def _on_keepalive_timeout(self) -> None:
        self._timer = None
        if self.phase is _IDLE:
            self._close()

