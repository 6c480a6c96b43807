"""The downstream HTTP/1.1 server protocol.

One :class:`HTTPConnection` per client socket. It reads requests with h11, through
core/h11_server.py's reader (keep-alive and pipelining, answered in order; h11's
verdicts and status hints, its errors turned into ours there), enforces the limits a
protocol parser leaves to us (reference/http-hardening.md, core/request_checks.py),
hands each complete request to the application's ``handler`` and offers two ways to
answer: :meth:`HTTPConnection.respond` for a whole response, or
:meth:`HTTPConnection.start_stream` and a :class:`StreamWriter` for a streamed one.
Responses are written by hand (core/http_response.py builds the head,
aio/stream_writer.py frames a streamed body): that is the per-token path. The reader
holds h11's state only while a request is read, so a connection that streams holds
none of it.

Fairness: a connection reads at most ``_EVENTS_PER_TURN`` request events (heads,
body pieces, ends; each request it dispatches is two at least) per turn of the event
loop, and all connections together about ``_EVENTS_PER_LOOP_TURN`` as their input
arrives, and as many from input left over: past either, a connection stops reading
and waits in the loop's :class:`InputQueue`, where the one that has had the fewest
events since it was last idle goes first. So no client's input holds the loop (a body of
one-byte chunks, a flood of pipelined requests) however fast it arrives, nor do many
such clients at once, and a fresh request goes ahead of their backlog.

Backpressure: the transport's write-buffer limits call ``pause_writing`` and
``resume_writing``; a stream writer forwards them to the producer's ``pause`` and
``resume`` callables. While writing is paused between requests, no further request is
taken (a client that pipelines and never reads gets no more answers queued). A client
that stays paused past the slow-consumer timeout, or lets more than
``max_write_buffer`` bytes pile up (whole responses and streamed bodies alike), is
disconnected.

Client input never puts a traceback in the log: a response head that cannot be sent
(a header value a handler echoed) becomes a plain 500, and a handler that raises
costs its request a 500; each logs one short line, at most once per
``_ERROR_LOG_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import logging
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import cast

import orjson

from sseserver.aio.flow import FlowControl
from sseserver.aio.log_limit import RateLimitedLog
from sseserver.aio.stream_writer import StreamWriter
from sseserver.aio.wheel import Deadline, wheel_for
from sseserver.config import LimitsSettings as Limits
from sseserver.core.h11_server import (
    CONNECTION_CLOSED,
    END_OF_MESSAGE,
    NEED_DATA,
    PAUSED,
    Event,
    ReaderState,
    RequestHead,
    RequestReader,
)
from sseserver.core.http_response import encode_response_head
from sseserver.core.request_checks import (
    HTTPError,
    awaits_continue,
    body_too_large,
    check_head,
    error_type,
    too_many_chunks,
)
from sseserver.errors import LocalProtocolError, RemoteProtocolError

logger = logging.getLogger("sseserver.http")

# Reader events one connection takes per turn of the event loop before the others
# run. An event is at most one head (16 KiB), one socket read of a body or one slice
# of a chunked body (h11_server.BODY_SLICE, about 1 ms on one-byte chunks), so a
# turn costs a connection ~10 ms of reading at worst whatever its client sends, and
# answers four pipelined requests at most (a GET is a head and an end).
_EVENTS_PER_TURN = 8
# Reader events all connections together take per turn as their input arrives, and
# again from input left over: with each taking its eight, 50 connections flooding
# one-byte chunks made a turn, and /healthz, wait 3.4 s here (500 of them, 5 s). One
# connection's share each, so a turn costs ~20 ms at worst whatever their number; the
# loop goes on at once, so a backlog is read as fast as before, in smaller turns.
_EVENTS_PER_LOOP_TURN = _EVENTS_PER_TURN
_UNBOUNDED = 1 << 62  # a read no waiting connection limits
# RFC 9110 §10.1.1: the interim answer a client that sent "Expect: 100-continue" waits
# for before its body (curl waits 1 s for it, then sends anyway).
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Lines a client can cause (a handler failing on its request, a header it made a
# handler echo): at most one of each kind per this many seconds.
_ERROR_LOG_INTERVAL = 10.0
_log_handler_failure = RateLimitedLog(logger, logging.ERROR, _ERROR_LOG_INTERVAL)
_log_unsendable_head = RateLimitedLog(logger, logging.WARNING, _ERROR_LOG_INTERVAL)
_log_read_failure = RateLimitedLog(logger, logging.ERROR, _ERROR_LOG_INTERVAL)
_INTERNAL_ERROR = orjson.dumps({"error": {"type": "internal_error",
                                          "message": "internal server error"}})


class Phase(enum.Enum):
    """Where the connection is in its request/response cycle."""

    IDLE = "idle"  # between requests (keep-alive)
    READING = "reading"  # head or body of a request is arriving
    RESPONDING = "responding"  # the handler owns the connection
    CLOSED = "closed"


@dataclass(slots=True)
class HTTPRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    http_version: str
    body: bytes = b""
    peer: str = ""
    extra: dict[str, object] = field(default_factory=dict)


Handler = Callable[[HTTPRequest, "HTTPConnection"], None]
# Asked about a request (body not read) whose client awaits "100 Continue": True to
# let the body come; False once it has answered the request with its final status.
Admission = Callable[[HTTPRequest, "HTTPConnection"], bool]


_date_cache: list[tuple[int, str]] = [(0, "")]


def http_date() -> str:
    """The Date header value; it changes once a second, so it is built once a second."""
    second = int(time.time())
    cached_second, value = _date_cache[0]
    if second != cached_second:
        value = formatdate(second, usegmt=True)
        _date_cache[0] = (second, value)
    return value


class HTTPConnection(asyncio.Protocol):
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
        self._reader = RequestReader(max_head_size=limits.max_head_bytes)
        self._transport: asyncio.Transport | None = None
        self.phase = Phase.IDLE
        self.peer = ""
        self._request: HTTPRequest | None = None
        self._body: list[bytes] = []
        self._wheel = wheel_for(self._loop)
        self._timer: Deadline | None = None  # head, body or keep-alive timeout
        self._reading_paused = False
        self._turn_due = False  # input is left for a later turn (waits in _inputs)
        self._inputs = input_queue(self._loop)
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
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        transport.set_write_buffer_limits(
            high=self._limits.write_high_water, low=self._limits.write_low_water)
        self._arm_timer(self._limits.header_timeout, self._on_head_timeout)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        if reader.state is not ReaderState.DONE:
            if self._between_requests:
                # the first byte of the next request: from now on the head must complete
                self._between_requests = False
                self._arm_timer(self._limits.header_timeout, self._on_head_timeout)
            if not self._turn_due and not self.flow.paused:
                inputs = self._inputs
                if inputs.reads_now(self.attained):
                    inputs.spend(self._process_events(inputs.bound()))
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
        if self.phase is Phase.RESPONDING or self._reader.state is ReaderState.DONE:
            return False
        self._reader.feed_eof()
        if not self._turn_due:
            self._process_events(_UNBOUNDED)
        return True  # finish the response in progress, then close

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = Phase.CLOSED
        self._cancel_timer()
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
        if self.phase is Phase.IDLE or self.phase is Phase.READING:
            self._next_turn()  # input held while the client was not reading goes on

    # -- reading requests ----------------------------------------------------------

    def _process_events(self, bound: int) -> int:
        """Read the client's input for one turn of the loop (see _EVENTS_PER_TURN),
        until the connection has had more than ``bound`` events since it was idle;
        the number of events read."""
        try:
            return self._read_events(bound)
        except Exception as exc:  # a bug must cost this connection, never log a traceback
            _log_read_failure("reading a request from %s failed: %s", self.peer,
                              type(exc).__name__)
            logger.debug("read failure", exc_info=True)
            self._answer_failure()
            return 1

    def _read_events(self, bound: int) -> int:
        reader = self._reader
        for done in range(_EVENTS_PER_TURN):
            if self.attained > bound:  # a connection that has had fewer events waits
                break
            if self.phase is not Phase.IDLE and self.phase is not Phase.READING:
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
            self.attained += 1
            try:
                self._handle_event(event)
            except HTTPError as exc:
                self._fail(exc.status, str(exc), close=exc.close)
                return done + 1
        else:
            done = _EVENTS_PER_TURN
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

    def _handle_event(self, event: Event) -> None:
        if isinstance(event, RequestHead):
            self._start_request(event)
        elif isinstance(event, bytes):
            self._add_body(event)
        elif event is END_OF_MESSAGE:
            self._dispatch()
        elif event is CONNECTION_CLOSED:
            self._close()

    def _start_request(self, head: RequestHead) -> None:
        self.phase = Phase.READING
        headers = check_head(head, self._limits)
        path, _, query = head.target.partition("?")
        self._request = HTTPRequest(
            method=head.method, path=path, query=query, headers=headers,
            http_version=head.http_version, peer=self.peer)
        # RFC 9112 §9.3, as h11 decides it: HTTP/1.1 without a "close" connection option
        self._keep_alive = head.http_version == "1.1" and "close" not in (
            token.strip(" \t") for token in headers.get("connection", "").lower().split(","))
        self._head_only = head.method == "HEAD"
        self._http11 = head.http_version == "1.1"  # chunked framing for a streamed body
        self._body = []
        declared = headers.get("content-length")
        if declared is not None and int(declared) > self._limits.max_body_bytes:
            raise body_too_large(self._limits)
        self._body_timed = False
        if self._http11 and self._reader.buffered == 0 and \
                awaits_continue(headers, declared):
            self._continue_or_refuse(self._request)

    def _continue_or_refuse(self, request: HTTPRequest) -> None:
        """RFC 9110 §10.1.1: a client awaits 100 before its body; a request that would
        be refused anyway gets its final status at once instead (and the connection
        closes after it, the body unread). Never after the body started arriving."""
        if self._admit is not None and not self._call(self._admit, request):
            return
        if self.phase is Phase.READING and self._transport is not None:
            self._transport.write(_CONTINUE)

    def _add_body(self, data: bytes) -> None:
        # Counted as sent (chunk framing and extensions too): the limit bounds what
        # reading the body costs, not only what it holds.
        if self._reader.body_bytes > self._limits.max_body_bytes:
            raise body_too_large(self._limits)
        if self._reader.body_chunks > self._limits.max_body_chunks > 0:
            raise too_many_chunks(self._limits)
        self._body.append(data)

    def _dispatch(self) -> None:
        request = self._request
        assert request is not None
        request.body = b"".join(self._body)
        self._body = []
        # the handler keeps what it needs of the request: a stream may last an hour
        self._request = None
        self._cancel_timer()
        self.phase = Phase.RESPONDING
        self.requests_served += 1
        self._call(self._handler, request)

    def _call(self, handler: Callable[[HTTPRequest, HTTPConnection], object],
              request: HTTPRequest) -> object:
        try:
            return handler(request, self)
        except Exception as exc:  # a handler bug costs one request, never the process
            # one short line (the request may be a client's probe, sent in a loop);
            # the traceback only for whoever debugs
            _log_handler_failure("handler failed for %s %.80r: %s", request.method,
                                 request.path, type(exc).__name__)
            logger.debug("handler failure", exc_info=True)
            if self.phase is not Phase.IDLE:  # IDLE: it answered before it raised
                self._answer_failure()
            return False

    def _answer_failure(self) -> None:
        """A 500 and the close; the close alone once the response has begun."""
        if self.phase is not Phase.CLOSED and not self._response_started:
            self.phase = Phase.RESPONDING
            self.respond(500, [("content-type", "application/json")], _INTERNAL_ERROR,
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

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes,
                *, close: bool = False) -> None:
        """Send a whole response and finish the cycle."""
        if self.phase is Phase.CLOSED or self._transport is None:
            return
        if self._response_started:  # a second answer to one request: a handler bug
            self._close()
            return
        all_headers = [*headers, *self.response_headers]
        has_body = status not in (204, 304)  # RFC 9110 §8.6: no length on these
        if has_body:
            all_headers.append(("content-length", str(len(body))))
        head = self._encode_head(status, all_headers, close)
        if head is None:
            self._send_internal_error()
            return
        self._transport.write(head + body if has_body and not self._head_only else head)
        if not self.check_write_buffer():
            self._finish_cycle()

    def respond_json(self, status: int, payload: object,
                     headers: list[tuple[str, str]] | None = None, *, close: bool = False
                     ) -> None:
        self.respond(status, [("content-type", "application/json"), *(headers or [])],
                     orjson.dumps(payload), close=close)

    def start_stream(self, status: int, headers: list[tuple[str, str]]) -> StreamWriter:
        """Send the head of a body of unknown length; the returned writer sends the body.

        HTTP/1.1 clients get chunked framing; an HTTP/1.0 client gets the raw body and
        the connection closes after it (it cannot read chunks); a HEAD gets the head.
        A head that cannot be sent (a header value with a line break) becomes a 500,
        the connection closes, and the writer returned is closed: it drops what it is
        given.
        """
        assert self._transport is not None
        chunked = self._http11
        all_headers = [*headers, *self.response_headers]
        if chunked:
            all_headers.append(("transfer-encoding", "chunked"))
        head = self._encode_head(status, all_headers, close=False)
        if head is None:
            self._send_internal_error()
            writer = StreamWriter(self, self._transport)
            writer.closed = True
            return writer
        self._transport.write(head)
        self.stream = StreamWriter(self, self._transport, chunked=chunked,
                                   sends_body=not self._head_only)
        return self.stream

    def end_stream(self) -> None:
        """Called by :meth:`StreamWriter.close`: the body is complete."""
        self.stream = None
        self._finish_cycle()

    def detach(self) -> int:
        """Give the connection up, unanswered, to be served elsewhere: a duplicate of
        its socket's descriptor, the caller's to close. This side stops reading and
        closes its copy, which leaves the TCP connection open (no reset, no FIN)."""
        assert self._transport is not None
        self._pause_reading()
        sock = self._transport.get_extra_info("socket")
        duplicate = os.dup(sock.fileno())
        self._close()
        return duplicate

    def abort(self) -> None:
        """Drop the connection at once (no more bytes are sent)."""
        if self._transport is not None and self.phase is not Phase.CLOSED:
            self._transport.abort()

    def _finish_headers(self, headers: list[tuple[str, str]], close: bool
                        ) -> list[tuple[str, str]]:
        headers.append(("date", http_date()))
        # a response before the whole request was read closes: the rest is not read
        if close or not self._keep_alive or not self._request_read():
            headers.append(("connection", "close"))
            self._close_after_response = True
        return headers

    def _encode_head(self, status: int, headers: list[tuple[str, str]], close: bool
                     ) -> bytes | None:
        """The head, or None if it cannot be sent (logged, rate-limited)."""
        try:
            head = encode_response_head(status, self._finish_headers(headers, close))
        except LocalProtocolError as exc:
            _log_unsendable_head("cannot send a %d response to %s: %.100s", status,
                                 self.peer, exc)
            return None
        self._response_started = True
        return head

    def _send_internal_error(self) -> None:
        """Answer 500 instead of a response that cannot be sent, and close."""
        assert self._transport is not None
        headers = [("content-type", "application/json"),
                   ("content-length", str(len(_INTERNAL_ERROR)))]
        head = encode_response_head(500, self._finish_headers(headers, close=True))
        self._response_started = True
        self._transport.write(head if self._head_only else head + _INTERNAL_ERROR)
        self._close()

    def check_write_buffer(self) -> bool:
        """Evict a client that lets more than max_write_buffer bytes pile up while it
        does not read (StreamWriter.write holds streamed bodies to the same cap)."""
        assert self._transport is not None
        if self.flow.paused and \
                self._transport.get_write_buffer_size() > self._limits.max_write_buffer:
            self._evict("write buffer limit exceeded")
            return True
        return False

    def _finish_cycle(self) -> None:
        if self._close_after_response or not self._request_read():
            self._close()
            return
        # the reader goes on with the bytes that came after the request
        reader = self._reader
        reader.start_next_cycle()
        pending = reader.buffered > 0 or reader.ended
        self.phase = Phase.IDLE
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
        return self._reader.state is ReaderState.DONE

    def _fail(self, status: int, message: str, *, close: bool) -> None:
        self._on_error(self, status, message)
        if self.phase is Phase.CLOSED:
            return
        if self._response_started:  # too late for a status: the client sees a cut
            self._close()
            return
        self.phase = Phase.RESPONDING
        self.respond_json(status, {"error": {"type": error_type(status), "message": message}},
                          close=close or not self._request_read())

    def _close(self) -> None:
        if self.phase is Phase.CLOSED:
            return
        self.phase = Phase.CLOSED
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
        if self.phase in (Phase.IDLE, Phase.READING):
            self._fail(408, "request head not received in time", close=True)

    def _on_body_timeout(self) -> None:
        self._timer = None
        if self.phase is Phase.READING:
            self._fail(408, "request body not received in time", close=True)

    def _on_keepalive_timeout(self) -> None:
        self._timer = None
        if self.phase is Phase.IDLE:
            self._close()


class InputQueue:
    """Reads as they arrive, and the connections with input left for a later turn.

    A read is taken at once while this turn's budget lasts (``_EVENTS_PER_LOOP_TURN``
    events) and no connection waits that has had fewer events since it was last idle;
    else the connection waits here. Each turn the waiting are served fewest events
    first, each until it has had more than the next one (least attained service: a
    new request goes ahead of a flood's backlog, pipelined or a body, and 500 requests
    arriving at once each get their head read before any gets its body), each at most
    once, ``_EVENTS_PER_LOOP_TURN`` events in all.
    """

    __slots__ = ("_budget", "_later", "_loop", "_scheduled", "_sequence", "_turning",
                 "_waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # (events attained, arrival, connection): a heap, fewest events first
        self._waiting: list[tuple[int, int, HTTPConnection]] = []
        self._later: list[HTTPConnection] = []  # added during a turn: the next one
        self._sequence = 0
        self._budget = _EVENTS_PER_LOOP_TURN  # for reads as they arrive, this turn
        self._scheduled = False
        self._turning = False

    def __repr__(self) -> str:
        return f"<InputQueue waiting={len(self)} budget={self._budget}>"

    def __len__(self) -> int:
        return len(self._waiting) + len(self._later)

    def reads_now(self, attained: int) -> bool:
        """Whether a read for a connection that has had ``attained`` events since it
        was idle is taken now."""
        waiting = self._waiting
        return self._budget > 0 and (not waiting or attained <= waiting[0][0])

    def bound(self) -> int:
        """The events the first waiting connection has had: a read now goes on while
        its connection has had no more."""
        waiting = self._waiting
        return waiting[0][0] if waiting else _UNBOUNDED

    def spend(self, events: int) -> None:
        """Count events read as input arrived against this turn's budget."""
        self._budget -= events
        self._schedule()  # the next turn gives the budget back

    def add(self, conn: HTTPConnection) -> None:
        if self._turning:
            self._later.append(conn)
        else:
            self._push(conn)
        self._schedule()

    def _push(self, conn: HTTPConnection) -> None:
        self._sequence += 1
        heapq.heappush(self._waiting, (conn.attained, self._sequence, conn))

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        self._scheduled = False
        self._turning = True
        budget = _EVENTS_PER_LOOP_TURN
        waiting = self._waiting
        try:
            while waiting and budget > 0:
                conn = heapq.heappop(waiting)[2]
                budget -= max(1, conn.take_turn(self.bound()))
        finally:
            self._turning = False
        for conn in self._later:
            self._push(conn)
        self._later.clear()
        self._budget = _EVENTS_PER_LOOP_TURN
        if waiting:
            self._schedule()


_input_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, InputQueue] = \
    weakref.WeakKeyDictionary()


def input_queue(loop: asyncio.AbstractEventLoop) -> InputQueue:
    """The loop's input queue, made on first use."""
    queue = _input_queues.get(loop)
    if queue is None:
        queue = _input_queues[loop] = InputQueue(loop)
    return queue
