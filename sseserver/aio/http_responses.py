"""The answering half of :class:`~sseserver.aio.http_server.HTTPConnection`: whole
responses, the head of a streamed one, and what ends a response (the write-buffer cap,
handing the connection over, aborting it).

Responses are written by hand (core/http_response.py builds the head,
aio/stream_writer.py frames a streamed body): that is the per-token path. A response
head that cannot be sent (a header value a handler echoed) becomes a plain 500 and
logs one short line, at most once per ``_ERROR_LOG_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from email.utils import formatdate

import orjson

from sseserver.aio.flow import FlowControl
from sseserver.aio.http_request import Phase
from sseserver.aio.log_limit import RateLimitedLog
from sseserver.aio.stream_writer import StreamWriter
from sseserver.config import LimitsSettings as Limits
from sseserver.core.http_response import encode_response_head, encode_spliced_head
from sseserver.errors import LocalProtocolError

logger = logging.getLogger("sseserver.http")

# Lines a client can cause (a header it made a handler echo): at most one of each
# kind per this many seconds.
_ERROR_LOG_INTERVAL = 10.0
_log_unsendable_head = RateLimitedLog(logger, logging.WARNING, _ERROR_LOG_INTERVAL)
# Phase.CLOSED as a module name: an enum member read through its class goes through
# EnumType.__getattr__'s slot in CPython 3.11 (~0.8k instructions more than a global).
_CLOSED = Phase.CLOSED
# The fields the connection adds, one tuple each: core/http_response.py finds their
# encoded line by the pair.
_CHUNKED = ("transfer-encoding", "chunked")
_CLOSE = ("connection", "close")
INTERNAL_ERROR = orjson.dumps({"error": {"type": "internal_error",
                                         "message": "internal server error"}})


_date_cache: list[tuple[int, str]] = [(0, "")]


def http_date() -> str:
    """The Date header value; it changes once a second, so it is built once a second."""
    second = int(time.time())
    cached_second, value = _date_cache[0]
    if second != cached_second:
        value = formatdate(second, usegmt=True)
        _date_cache[0] = (second, value)
    return value


class Responding:
    """Answers a connection's current request; :class:`HTTPConnection` reads it.

    The state named here lives in the connection's slots.
    """

    __slots__ = ()
    phase: Phase
    peer: str
    flow: FlowControl
    stream: StreamWriter | None
    response_headers: list[tuple[str, str]]
    _transport: asyncio.Transport | None
    _limits: Limits
    _keep_alive: bool
    _head_only: bool
    _http11: bool
    _response_started: bool
    _close_after_response: bool

    # what the reading half provides
    def _close(self) -> None:
        raise NotImplementedError

    def _pause_reading(self) -> None:
        raise NotImplementedError

    def _request_read(self) -> bool:
        raise NotImplementedError

    def _finish_cycle(self) -> None:
        raise NotImplementedError

    def _evict(self, reason: str) -> None:
        raise NotImplementedError

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes,
                *, close: bool = False) -> None:
        """Send a whole response and finish the cycle."""
        if self.phase is _CLOSED or self._transport is None:
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

    def start_stream(self, status: int, headers: list[tuple[str, str]], first: bytes = b""
                     ) -> StreamWriter:
        """Send the head of a body of unknown length; the returned writer sends the body.

        ``first``, the body's first bytes (a format's preamble), goes in the head's
        write: one segment and one system call where two writes made two.
        HTTP/1.1 clients get chunked framing; an HTTP/1.0 client gets the raw body and
        the connection closes after it (it cannot read chunks); a HEAD gets the head.
        A head that cannot be sent (a header value with a line break) becomes a 500,
        the connection closes, and the writer returned is closed: it drops what it is
        given.
        """
        all_headers = [*headers, *self.response_headers]
        if self._http11:
            all_headers.append(_CHUNKED)
        return self._send_stream_head(self._encode_head(status, all_headers, close=False),
                                      first)

    def start_spliced_stream(self, status: int, fixed: tuple[tuple[str, str], ...],
                             spliced: tuple[str, str], extra: list[tuple[str, str]],
                             first: bytes = b"", held: bool = False) -> StreamWriter:
        """:meth:`start_stream` with the headers ``[*fixed, spliced, *extra]``, the
        head built by :func:`encode_spliced_head` (a stream's head: fixed lines but
        its id and the date). ``held``: the writer begins held (StreamWriter.held),
        the head sent with what follows it at the writer's release."""
        after = (*extra, *self.response_headers, _CHUNKED) if self._http11 else \
            (*extra, *self.response_headers)
        # as _finish_headers decides: a response before the whole request was read closes
        close = not self._keep_alive or not self._request_read()
        if close:
            self._close_after_response = True
        try:
            head: bytes | None = encode_spliced_head(status, fixed, spliced, after,
                                                     http_date(), close)
        except LocalProtocolError as exc:
            _log_unsendable_head("cannot send a %d response to %s: %.100s", status,
                                 self.peer, exc)
            head = None
        else:
            self._response_started = True
        return self._send_stream_head(head, first, held)

    def _send_stream_head(self, head: bytes | None, first: bytes, held: bool = False
                          ) -> StreamWriter:
        transport = self._transport
        assert transport is not None
        if head is None:
            self._send_internal_error()
            writer = StreamWriter(self, transport)
            writer.closed = True
            return writer
        writer = self.stream = StreamWriter(self, transport, chunked=self._http11,
                                            sends_body=not self._head_only)
        if held:
            writer.held(head + writer.frame(first) if first else head)
            return writer
        transport.write(head + writer.frame(first) if first else head)
        if first and self.flow.paused:  # as a write of the first bytes checks
            self.check_write_buffer()
        return writer

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
        if self._transport is not None and self.phase is not _CLOSED:
            self._transport.abort()

    def _finish_headers(self, headers: list[tuple[str, str]], close: bool
                        ) -> list[tuple[str, str]]:
        headers.append(("date", http_date()))
        # a response before the whole request was read closes: the rest is not read
        if close or not self._keep_alive or not self._request_read():
            headers.append(_CLOSE)
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
                   ("content-length", str(len(INTERNAL_ERROR)))]
        head = encode_response_head(500, self._finish_headers(headers, close=True))
        self._response_started = True
        self._transport.write(head if self._head_only else head + INTERNAL_ERROR)
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

