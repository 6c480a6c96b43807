"""The server's side of HTTP/1.1 requests, sans-IO: bytes in, request events out.

Reading the client's request with h11 took ~29 µs (benchmarks/bench_hot_path.py), a
fifth of a stream's setup. Here a head is one regex match over the whole head, then a
split into fields (core/http_fields.py, the grammar response heads use too), and a
chunked body is core/chunked.py's. What it accepts and refuses, and the status it
hints when it refuses, is h11 0.16's, which tests/core/test_http_request.py checks
against h11 itself. Two things are left to the server: the head size limit here is
the strictest h11 gives whatever the reads (see http_fields.MAX_HEAD_SIZE), and
whether a request keeps the connection alive is the server's to decide (h11 would
refuse bytes after a "Connection: close" request; this reader keeps them, unread).

One difference is deliberate: a chunked body goes to the decoder CHUNKED_SLICE bytes
per event, as if the socket had read it so, so that no event costs more than a slice
of decoding. The verdict is the one h11 gives for reads cut there too: a chunk-size
line or trailer section longer than 16 KiB may be refused (431) even when it arrives
in one read (h11 takes it then, and refuses it when it arrives in pieces). Real
clients send a handful of hex digits. ``body_bytes`` counts the body as sent, its
framing included, for the server's body limit (h11 bounds no framing).

The driving contract: :meth:`RequestReader.feed` what the socket reads (and
:meth:`RequestReader.feed_eof` at its end), then call :meth:`RequestReader.next_event`
until it returns ``NEED_DATA`` or ``PAUSED``. A request comes out as a
:class:`RequestHead`, its body as ``bytes`` pieces, then ``END_OF_MESSAGE``. The reader
then pauses: what the client sends meanwhile (a pipelined request) waits in it,
counted by ``buffered``, until :meth:`RequestReader.start_next_cycle`. One reader
serves a connection's whole life, and holds nothing of a request once it is read.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sseserver.core.chunked import ChunkedDecoder
from sseserver.core.http_fields import (
    FIELD_LINES,
    MAX_HEAD_SIZE,
    TOKEN,
    explain_field_lines,
    find_head_end,
    parse_field_lines,
    resume_search_at,
)
from sseserver.errors import RemoteProtocolError

# RFC 9112 §3: method SP request-target SP HTTP-version. h11 takes any target of
# visible ASCII (origin, absolute, authority or asterisk form) and any one-digit
# version; which versions to serve is the server's call (505).
_REQUEST_LINE = rf"({TOKEN}) ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])\r?\n"
_REQUEST_HEAD = re.compile(rf"{_REQUEST_LINE}({FIELD_LINES})\r?\n")
# A chunked body goes to the decoder this many bytes at a time, one event each: the
# decoder's work per byte is highest on one-byte chunks (six bytes of framing each,
# ~2 us apiece), so a slice costs under 1 ms however a client frames its body, and a
# server's turn of eight events stays under ~10 ms; a real client's body of a few
# KiB is still a handful of events.
CHUNKED_SLICE = 2048
# Bytes left behind a request up to this many are sliced off as a copy; a longer
# backlog (pipelined requests) is cut from the front in place instead, so reading n
# queued requests costs O(bytes) and not O(n * bytes).
_SMALL_REST = 4096


class ReaderState(enum.Enum):
    """Where the reader is in the client's side of a request/response cycle."""

    HEAD = "head"  # waiting for, or reading, a request head
    BODY = "body"
    DONE = "done"  # one whole request read: paused until start_next_cycle()
    CLOSED = "closed"  # the client ended its input between requests
    ERROR = "error"  # the client broke the protocol; nothing more is read


class Signal(enum.Enum):
    """The events that carry no data."""

    NEED_DATA = "need data"
    PAUSED = "paused"  # a request was read; feed more only for the next cycle
    END_OF_MESSAGE = "end of message"
    CONNECTION_CLOSED = "connection closed"


NEED_DATA = Signal.NEED_DATA
PAUSED = Signal.PAUSED
END_OF_MESSAGE = Signal.END_OF_MESSAGE
CONNECTION_CLOSED = Signal.CONNECTION_CLOSED


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a third of a µs to build
class RequestHead:
    """A request line and its fields; text is the head's bytes read as Latin-1 (the
    method, target and version are ASCII by the grammar)."""

    method: str
    target: str
    http_version: str  # "1.1", "1.0", or any other digit.digit the client sent
    # Every field line in order (continuations unfolded), lower-case names, values
    # without OWS; Content-Length and Transfer-Encoding as h11 normalizes them.
    fields: list[tuple[str, str]]


Event = RequestHead | bytes | Signal


class RequestReader:
    """Reads a client's requests, one cycle at a time (see the module docstring).

    ``max_head_size`` bounds a request head, and also a chunk-size line or trailer
    section of a chunked body (h11's ``max_incomplete_event_size`` bounds both).
    """

    __slots__ = ("_body_left", "_buffer", "_decoder", "_ended", "_max_head_size",
                 "_searched", "body_bytes", "state")

    def __init__(self, max_head_size: int = MAX_HEAD_SIZE) -> None:
        self._buffer: bytes | bytearray = b""
        self._body_left = 0  # bytes still due of a Content-Length body
        self._decoder: ChunkedDecoder | None = None  # for a chunked body
        self._ended = False
        self._max_head_size = max_head_size
        self._searched = 0  # the head's empty line is not in _buffer before this offset
        # The current body's bytes read so far as sent: chunk-size lines, extensions,
        # CRLFs and trailers included, so a limit on it bounds what framing costs too.
        self.body_bytes = 0
        self.state = ReaderState.HEAD

    def __repr__(self) -> str:
        ended = " ended" if self._ended else ""
        return f"<RequestReader {self.state.value} buffered={len(self._buffer)}{ended}>"

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet."""
        return len(self._buffer)

    @property
    def unread(self) -> bytes:
        """The bytes received and not read yet (h11's ``trailing_data``)."""
        return bytes(self._buffer)

    @property
    def ended(self) -> bool:
        """The client has ended its input (:meth:`feed_eof`)."""
        return self._ended

    def feed(self, data: bytes) -> None:
        """Add bytes the client sent; :meth:`next_event` reads them.

        Raises :class:`RuntimeError` after :meth:`feed_eof` (nothing follows the end).
        """
        if self._ended:
            raise RuntimeError("data fed after the end of input")
        if not data:
            return
        buffer = self._buffer
        if not buffer:
            self._buffer = data
        elif type(buffer) is bytearray:
            buffer += data
        else:  # a head or a body arriving in pieces: grow in place, not by copies
            self._buffer = bytearray(buffer)
            self._buffer += data

    def feed_eof(self) -> None:
        """The client has closed its side: a request cut short is an error, none at all
        is ``CONNECTION_CLOSED``."""
        self._ended = True

    def next_event(self) -> Event:
        """The next event: a :class:`RequestHead`, a body piece (``bytes``),
        ``END_OF_MESSAGE``, ``CONNECTION_CLOSED``, or ``NEED_DATA`` / ``PAUSED``.

        Raises :class:`RemoteProtocolError` when the client broke the protocol, with
        h11's status hint (400; 431 for a head or chunk line over the size limit; 501
        for a Transfer-Encoding other than chunked); the reader then stays failed.
        """
        try:
            state = self.state
            if state is ReaderState.HEAD:
                return self._read_head()
            if state is ReaderState.BODY:
                return self._read_body()
            if state is ReaderState.DONE:
                return self._read_while_paused()
            if state is ReaderState.CLOSED:
                return CONNECTION_CLOSED
            raise RemoteProtocolError("the request stream already failed")
        except RemoteProtocolError:
            self.state = ReaderState.ERROR
            raise

    def start_next_cycle(self) -> None:
        """Read the next request: what was fed while paused is read from now on.

        Raises :class:`RuntimeError` unless a whole request has been read.
        """
        if self.state is not ReaderState.DONE:
            raise RuntimeError(f"no request to move past: the reader is {self.state.value}")
        self.state = ReaderState.HEAD
        self._searched = 0

    def _read_head(self) -> Event:
        buffer = self._buffer
        if not buffer:
            if self._ended:
                self.state = ReaderState.CLOSED
                return CONNECTION_CLOSED
            return NEED_DATA
        end = find_head_end(buffer, self._searched, self._max_head_size)
        if end < 0:
            if self._ended:
                raise RemoteProtocolError("the client closed the connection mid-head")
            self._searched = resume_search_at(buffer)
            return NEED_DATA
        head = _parse_head(self._take(end))
        self._searched = 0
        length = _body_length(head.fields)
        if length is None:
            self._decoder = ChunkedDecoder(self._max_head_size)
        else:
            self._body_left = length
        self.body_bytes = 0
        self.state = ReaderState.BODY
        return head

    def _read_body(self) -> Event:
        if self._decoder is not None:
            return self._read_chunked(self._decoder)
        left = self._body_left
        if not left:
            self.state = ReaderState.DONE
            return END_OF_MESSAGE
        if not self._buffer:
            return self._need_body()
        piece = self._take(left)
        self._body_left = left - len(piece)
        self.body_bytes += len(piece)
        return piece

    def _read_chunked(self, decoder: ChunkedDecoder) -> Event:
        # One slice per event, unless it held framing alone (a size line, a trailer):
        # then the next, so an event is a piece of the body or its end.
        while not decoder.done:
            if not self._buffer:
                return self._need_body()
            piece = bytes(self._buffer[:CHUNKED_SLICE])  # the decoder takes bytes
            pieces = decoder.feed(piece)
            used = len(piece) - len(decoder.trailing) if decoder.done else len(piece)
            self._drop(used)
            self.body_bytes += used
            if pieces:
                return pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self._decoder = None
        self.state = ReaderState.DONE
        return END_OF_MESSAGE

    def _need_body(self) -> Event:
        if self._ended:
            raise RemoteProtocolError("the client closed the connection mid-body")
        return NEED_DATA

    def _take(self, count: int) -> bytes:
        """The first ``count`` bytes of the buffer (all if fewer), removed from it."""
        buffer = self._buffer
        if count >= len(buffer):
            self._buffer = b""
            return buffer if type(buffer) is bytes else bytes(buffer)
        piece = bytes(buffer[:count])
        self._drop(count)
        return piece

    def _drop(self, count: int) -> None:
        """Remove the first ``count`` bytes of the buffer (all if fewer)."""
        buffer = self._buffer
        if count >= len(buffer):
            self._buffer = b""
            return
        if type(buffer) is bytes:
            if len(buffer) - count <= _SMALL_REST:
                self._buffer = buffer[count:]
                return
            buffer = self._buffer = bytearray(buffer)
        del buffer[:count]  # CPython moves the start of a bytearray: no copy of the rest

    def _read_while_paused(self) -> Event:
        if self._buffer:
            return PAUSED
        if self._ended:
            self.state = ReaderState.CLOSED
            return CONNECTION_CLOSED
        return NEED_DATA


def _parse_head(head: bytes | bytearray) -> RequestHead:
    text = head.decode("latin-1")
    match = _REQUEST_HEAD.fullmatch(text)
    if match is None:
        raise RemoteProtocolError(_explain_request(text))
    method, target, http_version, lines = match.groups()
    fields = parse_field_lines(lines)
    _check_host(fields, http_version)
    return RequestHead(method, target, http_version, fields)


def _check_host(fields: list[tuple[str, str]], http_version: str) -> None:
    # RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host
    # field, and to any request with more than one (h11 asks it of 1.1 exactly).
    hosts = 0
    for name, _ in fields:
        if name == "host":
            hosts += 1
    if hosts > 1:
        raise RemoteProtocolError("more than one Host header")
    if not hosts and http_version == "1.1":
        raise RemoteProtocolError("an HTTP/1.1 request without a Host header")


def _body_length(fields: list[tuple[str, str]]) -> int | None:
    """The declared length of the body, or None for a chunked one (RFC 9112 §6.3:
    chunked wins over a Content-Length; neither means no body)."""
    length = 0
    for name, value in fields:
        if name == "transfer-encoding":  # "chunked": normalize_fields refused the rest
            return None
        if name == "content-length":
            length = int(value)
    return length


def _explain_request(text: str) -> str:
    """Which line of a refused head is at fault (only on the error path)."""
    request_line, _, rest = text.partition("\n")
    if re.fullmatch(_REQUEST_LINE, request_line + "\n") is None:
        # quoted without its query, which may carry a credential (?token=)
        shown, query_mark, _ = request_line.partition("?")
        hidden = " (query not shown)" if query_mark else ""
        return f"malformed request line {shown[:80]!r}{hidden}"
    return explain_field_lines(rest)
