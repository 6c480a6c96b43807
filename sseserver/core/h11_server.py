"""The server's side of HTTP/1.1 requests, sans-IO: bytes in, request events out, h11
reading them.

h11 parses every request head and body (shared/DESIGN.md: the most-vetted parser for
untrusted heads). This module is the one place that knows h11 on the server side: it
turns h11's events into :class:`RequestHead`, ``bytes`` and :class:`Signal`, and h11's
errors into :class:`~sseserver.errors.RemoteProtocolError` with h11's status hint and
a message of our own that names the rule and never quotes the client's bytes (h11's
messages quote them, and a request line or header may carry a credential).

h11 sees the input a slice (``HEAD_SLICE``, ``BODY_SLICE``) at a time, and a fresh
``h11.Connection`` per request, made when its first byte arrives and dropped once the
request is read: what a connection holds between requests, or while it streams a
response for an hour, is this reader and the bytes not read yet, never h11's state.
(h11's own next cycle needs the response sent through it, and responses are written
by hand.) A body of declared length ends once h11 has handed out that many bytes,
without asking h11 for the end it would give taking no byte (a third of a GET's
reading cost). Slices keep three things true whatever the client's reads:

- the head limit is the strictest h11 gives: h11 measures only incomplete heads
  (h11 issue #182), so a head is also measured once read, up to its last byte, and
  a head of ``max_head_size + 1`` bytes is the longest that passes;
- one event decodes at most a slice of a chunked body (h11 reads a chunk per event:
  a body of one-byte chunks would otherwise be thousands of events), so no event
  costs more than a slice however a client frames its body;
- ``body_bytes`` counts the body as sent, its framing included, for the server's
  body limit (h11 bounds no framing): what h11 took of the slices given to it.

The driving contract: :meth:`RequestReader.feed` what the socket reads (and
:meth:`RequestReader.feed_eof` at its end), then call :meth:`RequestReader.next_event`
until it returns ``NEED_DATA`` or ``PAUSED``. A request comes out as a
:class:`RequestHead`, its body as ``bytes`` pieces, then ``END_OF_MESSAGE``. The reader
then pauses: what the client sends meanwhile (a pipelined request) waits in it,
counted by ``buffered``, until :meth:`RequestReader.start_next_cycle`. Whether a
request keeps the connection alive is the server's to decide (h11 would refuse bytes
after a "Connection: close" request; this reader keeps them, unread).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import h11

from sseserver.core.h11_errors import explain_body_error, explain_head_error
from sseserver.core.http_fields import MAX_HEAD_SIZE
from sseserver.errors import RemoteProtocolError

# What h11 is given of a head at a time: a typical request (a head and a JSON body of
# a few hundred bytes) is one slice, given whole without a copy, and what h11 holds of
# the body once the head is read (the first body event's share) stays small.
HEAD_SLICE = 2048
# What h11 is given of a chunked body at a time: h11 reads one-byte chunks at ~52,000
# instructions each (5-10 us; six bytes of framing per chunk), so a slice decodes in
# about 1 ms however a client frames its body (the first event after the head: up to
# HEAD_SLICE), and a server's turn of eight events stays near 10 ms. A real client's
# chunks are KiBs: their slices cost a few us.
BODY_SLICE = 512
# Bytes left behind a request up to this many are sliced off as a copy; a longer
# backlog (pipelined requests) is cut from the front in place instead, so reading n
# queued requests costs O(bytes) and not O(n * bytes).
_SMALL_REST = 4096
# RFC 9112 §6.3, as h11 has it: a chunked body, whatever Content-Length says.
_CHUNKED = -1
# Field names clients send on nearly every request, as they spell them (lower case or
# each word capitalized), to the lower-case text: a table lookup where decoding and
# lower-casing cost ~1.1k instructions a field. A fixed table: a name not in it is
# decoded as before, and client input never adds to it.
_COMMON_FIELD_NAMES = (
    "host", "content-type", "content-length", "transfer-encoding", "connection",
    "accept", "accept-encoding", "accept-language", "user-agent", "authorization",
    "x-api-key", "origin", "referer", "cookie", "cache-control", "expect",
    "last-event-id", "access-control-request-method", "access-control-request-headers",
)
_FIELD_NAMES = {spelling.encode("ascii"): name for name in _COMMON_FIELD_NAMES
                for spelling in (name, name.title())}
# The request line's tokens most requests have, decoded the same way (ASCII).
_LINE_TOKENS = {token.encode("ascii"): token for token in (
    "GET", "POST", "HEAD", "OPTIONS", "DELETE", "PUT", "PATCH", "1.1", "1.0")}


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

# The states as module names: an enum's member read through its class
# (``ReaderState.HEAD``) goes through EnumType.__getattr__'s slot, ~0.8k instructions more
# than a global in CPython 3.11; the reader reads its state seven times a request.
_HEAD = ReaderState.HEAD
_BODY = ReaderState.BODY
_DONE = ReaderState.DONE
_CLOSED = ReaderState.CLOSED
_ERROR = ReaderState.ERROR


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
    # The fields by name, a repeated field's values joined with ", " (RFC 9110 §5.3),
    # in the order of their first lines; None: not made yet (fields_by_name makes it).
    # Derived from fields: not compared, not shown.
    headers: dict[str, str] | None = field(default=None, compare=False, repr=False)
    # The head's bytes as the client sent them, its request line and blank line
    # included (-1: not known); a bound on the head as parsed (request_checks.py).
    size: int = field(default=-1, compare=False, repr=False)


Event = RequestHead | bytes | Signal


def fields_by_name(fields: list[tuple[str, str]]) -> dict[str, str]:
    """Fields by name, a repeated field's values joined with ", " in their order."""
    headers: dict[str, str] = {}
    for name, value in fields:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class RequestReader:
    """Reads a client's requests with h11, one cycle at a time (see the module
    docstring).

    ``max_head_size`` bounds a request head, and also a chunk-size line or trailer
    section of a chunked body (h11's ``max_incomplete_event_size`` bounds both).
    """

    __slots__ = ("_body_left", "_buffer", "_conn", "_ended", "_fed", "_max_head_size",
                 "body_bytes", "body_chunks", "state")

    def __init__(self, max_head_size: int = MAX_HEAD_SIZE) -> None:
        # Received and not taken by h11 yet; h11 was given the first ``_fed`` bytes
        # (while a head is read, so that an error can name the line at fault).
        self._buffer: bytes | bytearray = b""
        self._fed = 0
        # Only while a request is read: in the body without it, the body has ended
        # (with the last piece handed out, or with the head).
        self._conn: h11.Connection | None = None
        self._body_left = 0  # bytes still due of a Content-Length body, or _CHUNKED
        self._ended = False
        self._max_head_size = max_head_size
        # The current body's bytes read so far as sent: chunk-size lines, extensions,
        # CRLFs and trailers included, so a limit on it bounds what framing costs too.
        self.body_bytes = 0
        # The current chunked body's chunks begun so far: h11 reads one at ~52,000
        # instructions whatever its size, so their number bounds what reading costs.
        self.body_chunks = 0
        self.state = _HEAD

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
        state = self.state
        try:
            if state is _HEAD:
                return self._read_head()
            if state is _BODY:
                return self._read_body()
        except h11.RemoteProtocolError as exc:
            self._fail()
            # h11's message quotes the client's bytes: ours names the rule instead,
            # and the h11 error is not chained (a debug traceback would show it)
            raise self._our_error(state, exc) from None
        except RemoteProtocolError:
            self._fail()
            raise
        if state is _DONE:
            return self._read_while_paused()
        if state is _CLOSED:
            return CONNECTION_CLOSED
        raise RemoteProtocolError("the request stream already failed")

    def start_next_cycle(self) -> None:
        """Read the next request: what was fed while paused is read from now on.

        Raises :class:`RuntimeError` unless a whole request has been read.
        """
        if self.state is not _DONE:
            raise RuntimeError(f"no request to move past: the reader is {self.state.value}")
        self.state = _HEAD

    # -- the head --------------------------------------------------------------------

    def _read_head(self) -> Event:
        conn = self._conn
        if conn is None:
            if not self._buffer:
                if self._ended:
                    self.state = _CLOSED
                    return CONNECTION_CLOSED
                return NEED_DATA
            conn = self._conn = h11.Connection(
                h11.SERVER, max_incomplete_event_size=self._max_head_size)
            buffer = self._buffer
            if len(buffer) <= HEAD_SLICE and type(buffer) is bytes:
                # A typical request's first read: one slice, the buffer itself (what
                # _give_head_slice gives, without its call)
                self._fed = len(buffer)
                conn.receive_data(buffer)
                event = conn.next_event()
                if event is not h11.NEED_DATA:
                    return self._start_body(conn, event)  # type: ignore[arg-type]
        while self._give_head_slice(conn):
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                # ConnectionClosed cannot come: h11 was given bytes of this request
                return self._start_body(conn, event)  # type: ignore[arg-type]
        return NEED_DATA

    def _give_head_slice(self, conn: h11.Connection) -> bool:
        """Give h11 the next slice of a head (or the end of input); False when there
        is nothing to give."""
        buffer, fed = self._buffer, self._fed
        if fed < len(buffer):
            if fed == 0 and len(buffer) <= HEAD_SLICE:
                piece = buffer if type(buffer) is bytes else bytes(buffer)
            else:
                piece = bytes(buffer[fed:fed + HEAD_SLICE])
            self._fed = fed + len(piece)
            conn.receive_data(piece)
            return True
        return self._give_eof(conn)

    def _give_eof(self, conn: h11.Connection) -> bool:
        # Given once: with no more input to come, h11 refuses what it is reading, and
        # the reader is failed.
        if self._ended:
            conn.receive_data(b"")
            return True
        return False

    def _start_body(self, conn: h11.Connection, request: h11.Request) -> RequestHead:
        left_in_h11 = len(conn.trailing_data[0])  # at most a slice: a cheap copy
        head_size = self._fed - left_in_h11
        # measured up to the head's last byte (see the module docstring)
        if head_size - 1 > self._max_head_size:
            raise RemoteProtocolError(f"head longer than {self._max_head_size} bytes", 431,
                                      offset=self._max_head_size)
        self._drop(head_size)
        self._fed = left_in_h11
        # raw_items() and lower() here: iterating h11's Headers goes through its
        # Sequence __getitem__, twice the cost of the whole conversion
        fields = [(_FIELD_NAMES.get(name) or name.decode("ascii").lower(),
                   value.decode("latin-1")) for name, value in request.headers.raw_items()]
        headers = dict(fields)
        if len(headers) != len(fields):  # a name repeats: its values are joined
            headers = fields_by_name(fields)
        # h11 keeps one Content-Length (equal ones merged, others refused) and one
        # Transfer-Encoding ("chunked", the only one it takes), which wins
        if "transfer-encoding" in headers:
            length = _CHUNKED
        else:
            declared = headers.get("content-length")
            length = 0 if declared is None else int(declared)  # h11: digits
        self._body_left = length
        self.body_bytes = self.body_chunks = 0
        self.state = _BODY
        if not length:
            self._let_go()  # no body: the end at the next event
        method, version = request.method, request.http_version
        return RequestHead(_LINE_TOKENS.get(method) or method.decode("ascii"),
                           request.target.decode("ascii"),
                           _LINE_TOKENS.get(version) or version.decode("ascii"), fields,
                           headers, head_size)

    # -- the body --------------------------------------------------------------------

    def whole_body(self) -> bytes | None:
        """The rest of the current request's body, when all of it has arrived: what
        :meth:`next_event` would give next (the body's one piece, if any, then
        ``END_OF_MESSAGE``), taken at once, and the reader is paused as after
        ``END_OF_MESSAGE``. None when more of it is to come, the body is chunked, or
        no body is being read: :meth:`next_event` reads it then.
        """
        left = self._body_left
        if self.state is not _BODY or left == _CHUNKED or len(self._buffer) < left:
            return None
        # What is left of a Content-Length body is all in the buffer: h11 hands it as
        # one Data event (it gives what it holds up to the length), and _read_body
        # gives it all, ending the body (h11's state goes).
        body = self._read_body() if self._conn is not None else b""
        self.state = _DONE
        return body  # type: ignore[return-value]

    def _read_body(self) -> Event:
        conn = self._conn
        if conn is None:
            self.state = _DONE
            return END_OF_MESSAGE
        if self._body_left == _CHUNKED:
            return self._read_chunked(conn)
        # h11 is given the body's bytes and no more: what follows stays here
        give = min(len(self._buffer), self._body_left) - self._fed
        if give > 0:
            conn.receive_data(self._given(give))
        event = conn.next_event()
        if type(event) is h11.Data:
            piece = event.data
            taken = len(piece)
            # as _taken, without its calls: most bodies are one piece, the buffer's end
            if taken < len(self._buffer):
                self._drop(taken)
            else:
                self._buffer = b""
            self.body_bytes += taken
            self._body_left -= taken
            if self._body_left:
                self._fed -= taken
            else:
                # h11 would end the body next, taking no byte: the end is due at the
                # next event, and h11's state goes now (a third of a request's cost;
                # as _let_go)
                self._fed = 0
                self._conn = None
            return piece if type(piece) is bytes else bytes(piece)
        if type(event) is h11.EndOfMessage:
            self._end_message(self._fed)
            self.state = _DONE
            return END_OF_MESSAGE
        if self._give_eof(conn):  # a body cut short: h11 refuses it
            conn.next_event()
        return NEED_DATA

    def _read_chunked(self, conn: h11.Connection) -> Event:
        # What h11 holds, or else one slice, per event, unless it was framing alone (a
        # size line, a trailer): then the next, so an event is a piece of the body or
        # its end.
        pieces: list[bytes | bytearray] = []
        while True:
            event = conn.next_event()
            if type(event) is h11.Data:
                pieces.append(event.data)
                if event.chunk_start:
                    self.body_chunks += 1
                continue
            if type(event) is h11.EndOfMessage:
                self._end_message(len(conn.trailing_data[0]) if self._fed else 0)
                if pieces:  # the end at the next event (the connection is gone)
                    return b"".join(pieces)
                self.state = _DONE
                return END_OF_MESSAGE
            self._taken(self._fed)  # h11 took it all, a part-read line included
            if pieces:
                return b"".join(pieces)
            if self._buffer:
                conn.receive_data(self._given(BODY_SLICE))
            elif not self._give_eof(conn):
                return NEED_DATA

    def _given(self, count: int) -> bytes:
        """The next ``count`` bytes (or fewer) not given to h11 yet, now given."""
        buffer, fed = self._buffer, self._fed
        if fed == 0 and count >= len(buffer):
            piece = buffer if type(buffer) is bytes else bytes(buffer)
        else:
            piece = bytes(buffer[fed:fed + count])
        self._fed = fed + len(piece)
        return piece

    def _taken(self, count: int) -> None:
        """h11 has taken ``count`` bytes of what it was given: they are read."""
        self._drop(count)
        self._fed -= count
        self.body_bytes += count

    def _end_message(self, left_in_h11: int) -> None:
        """h11 has read the whole request, and holds ``left_in_h11`` bytes it was given
        beyond it (they are still at the front of the buffer); h11's state goes."""
        self._taken(self._fed - left_in_h11)
        self._fed = 0
        self._conn = None

    def _let_go(self) -> None:
        """:meth:`_end_message` when h11 has taken every byte of the request it was
        given (what it holds is what follows the request)."""
        self._fed = 0
        self._conn = None

    def _fail(self) -> None:
        self.state = _ERROR
        self._conn = None

    def _our_error(self, state: ReaderState, exc: h11.RemoteProtocolError
                   ) -> RemoteProtocolError:
        status = exc.error_status_hint
        if state is _HEAD:
            head = bytes(self._buffer[:self._fed])
            message = explain_head_error(str(exc), status, head, self._max_head_size)
        else:
            message = explain_body_error(str(exc), status)
        return RemoteProtocolError(message, status)

    # -- between requests ------------------------------------------------------------

    def _read_while_paused(self) -> Event:
        if self._buffer:
            return PAUSED
        if self._ended:
            self.state = _CLOSED
            return CONNECTION_CLOSED
        return NEED_DATA

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
