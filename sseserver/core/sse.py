"""Server-sent events, sans-IO: an encoder and an incremental WHATWG parser.

Section numbers refer to reference/sse-spec.md, which restates WHATWG HTML §9.2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sseserver.errors import EventTooLarge, LocalProtocolError, NoEvents, RemoteProtocolError

# A provider that never sends a line ending must not grow our memory without bound.
# Real provider lines are one JSON chunk (well under 64 KiB even for big tool-call
# arguments); 1 MiB leaves room for the largest we have seen with a wide margin.
MAX_LINE_BYTES = 1024 * 1024
# Nor one that sends data lines and never the blank line that ends the event: the
# same bound, for the same reason (a provider's event is one JSON chunk on one line).
MAX_EVENT_BYTES = 1024 * 1024
# Bytes that carry no event (comments, blank lines, fields other than data) since the
# last event: far above any keep-alive traffic (OpenRouter's ": OPENROUTER PROCESSING"
# every few seconds is under 100 KiB in an hour), far below a flood's (an upstream
# sending comments as fast as it can passes this in a millisecond).
MAX_BYTES_WITHOUT_EVENT = 1024 * 1024

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
# What a body that is some other document begins with, blanks aside: a JSON object or
# array, an HTML or XML page. No event stream does (a line is a field, a comment or
# blank), and a proxy's quota page or a JSON error labelled text/event-stream does.
_OTHER_DOCUMENT = re.compile(rb"[ \t\r\n]*[{\[<]")
_BAD_IN_FIELD = re.compile(r"[\r\n\x00]")
# One whole event of one data line: what comes before its data and after it.
_DATA_EVENT_FRAMING = (b"data: ", b"\n\n")


class NotAnEventStream(RemoteProtocolError):
    """The body is some other document (JSON, HTML), whatever its label said."""


@dataclass(slots=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


# -- encoding ------------------------------------------------------------------------


def encode_event(data: str | bytes | None = None, *, event: str | None = None,
                 id: str | int | None = None, retry: int | None = None,
                 comment: str | None = None) -> bytes:
    """One complete event block, LF line endings, ``name: value`` with one space (§4.3).

    Raises :class:`LocalProtocolError` for CR, LF or NUL in ``event`` or ``id``, an empty
    event name, a negative retry or a line break in a comment; ``ValueError`` for a
    block with nothing in it.
    """
    if data is None and event is None and id is None and retry is None and comment is None:
        raise ValueError("an event needs at least one field")
    lines: list[bytes] = []
    if comment is not None:
        if "\r" in comment or "\n" in comment:
            raise LocalProtocolError("a comment must not contain CR or LF")
        lines.append(b": " + comment.encode())
    if retry is not None:
        if retry < 0:
            raise LocalProtocolError("retry must be a non-negative number of milliseconds")
        lines.append(b"retry: %d" % retry)
    if id is not None:
        lines.append(b"id: " + _checked_field("id", str(id)).encode())
    if event is not None:
        if not event:
            raise LocalProtocolError("an empty event name means 'message': leave it out")
        lines.append(b"event: " + _checked_field("event", event).encode())
    if data is not None:
        raw = data.encode() if isinstance(data, str) else data
        # §4.2: one data line per piece; clients rejoin the pieces with LF
        lines.extend(b"data: " + piece for piece in _LINE_BREAK.split(raw))
    return b"\n".join(lines) + b"\n\n"


def encode_comment(text: str = "") -> bytes:
    """A bare comment line with no blank line after it: the heartbeat form (§4.9)."""
    if "\r" in text or "\n" in text:
        raise LocalProtocolError("a comment must not contain CR or LF")
    return b": " + text.encode() + b"\n" if text else b":\n"


def _checked_field(name: str, value: str) -> str:
    # §4.4-4.5: CR/LF would end the line early; a NUL makes clients ignore the id
    if _BAD_IN_FIELD.search(value):
        raise LocalProtocolError(f"{name} must not contain CR, LF or NUL: {value!r}")
    return value


# -- parsing -------------------------------------------------------------------------


class SSEParser:
    """Incremental WHATWG event-stream parser: bytes in, events out, any split point.

    Driving contract: call :meth:`feed` with each chunk as it arrives and handle the
    events it returns; call :meth:`close` at the end of the stream (a pending,
    unterminated event is discarded, §2.6).

    Memory and work are bounded, each by a limit: the feed methods raise
    :class:`EventTooLarge` when an unfinished line grows past ``max_line_bytes`` or the
    data of an unfinished event past ``max_event_bytes``, and :class:`NoEvents` when
    lines that carry no event (comments, blank lines, fields other than data) pass
    ``max_bytes_without_event`` between two events; both count decoded characters, and
    are judged after each read, and an event also when it ends. An event or line that
    arrives whole in one read is bounded by that read instead: the shortcuts that take
    such reads count nothing, and a data line costs nothing more, so a token pays for
    none of this. Events a read completed before a bound broke are the error's
    ``read_before``.

    With ``refuse_documents``, a stream that begins (blanks aside) like JSON or HTML
    raises :class:`NotAnEventStream`: each of its lines would be a field no one reads,
    and a provider's body that looks so is its error page.
    """

    __slots__ = ("_at_boundary", "_buffer", "_data", "_event", "_id", "_max_event",
                 "_max_line", "_max_without_event", "_pending_cr", "_refuse_documents",
                 "_started", "_without_event", "last_event_id", "retry")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES,
                 max_event_bytes: int = MAX_EVENT_BYTES,
                 max_bytes_without_event: int = MAX_BYTES_WITHOUT_EVENT,
                 refuse_documents: bool = False) -> None:
        self._refuse_documents = refuse_documents
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._max_without_event = max_bytes_without_event
        self._without_event = 0  # characters of lines that carried no event, since one
        self._buffer = bytearray()  # bytes of an incomplete line
        self._pending_cr = False  # the last chunk ended in CR: a leading LF is its pair
        self._started = False  # the BOM check is done (§2.1: only at stream start)
        self._data: list[str] = []
        self._event = ""
        self._id = ""  # §2.3: the last event ID buffer; it persists across events
        self.last_event_id = ""
        self.retry: int | None = None
        # Nothing pending: the next read starts an event. One flag, kept by the general
        # path, so the per-token read tests one slot instead of five parts of the state.
        # True at the start too: a read the shortcuts take begins "data:" or "event:",
        # so it has no BOM to strip, and taking it ends the BOM check.
        self._at_boundary = True

    def __repr__(self) -> str:
        return (f"<SSEParser buffered={len(self._buffer)} last_event_id="
                f"{self.last_event_id!r} retry={self.retry}>")

    def feed_data_line(self, chunk: bytes) -> str | None:
        """If ``chunk`` is exactly one whole event of one ``data: `` line, with nothing
        pending before it (a provider's commonest read), take it and return its data:
        the caller builds no event object. Otherwise None, and nothing is taken."""
        # One line: its only LF is the first of the two that end it (and no CR).
        if self._at_boundary and chunk.startswith(b"data: ") and \
                chunk.find(b"\n") == len(chunk) - 2 and chunk[-1] == 10 and 13 not in chunk:
            self.last_event_id = self._id  # §2.5, as _dispatch does
            self._started = True
            try:
                return chunk[6:-2].decode()
            except UnicodeDecodeError:
                return _decode(chunk[6:-2])
        return None

    def data_event_framing(self) -> tuple[bytes, bytes] | None:
        """``(before, after)`` when this parser is between events with nothing pending
        (the stream begun, the last event id its id buffer): then a read ``before + D +
        after``, ``D`` UTF-8 with no CR or LF, is one whole event whose data is
        ``D.decode()``, and taking it leaves this parser as it is. A caller may take
        such reads itself, with no call here, until it next feeds this parser (the
        pump's text lane). None when nothing of the kind holds now."""
        if self._at_boundary and self._started and self.last_event_id == self._id:
            return _DATA_EVENT_FRAMING
        return None

    def feed_data_lines(self, chunk: bytes) -> list[str] | None:
        """:meth:`feed_data_line` for a read of one or more such events (a provider's
        last read often holds several: the finish, the usage, the end). None, and
        nothing taken, for any other read."""
        if not (self._at_boundary and chunk.startswith(b"data: ") and
                self._ends_an_event(chunk)):
            return None
        # One decoding for all: a break between events is ASCII, which ends any
        # invalid sequence before it, so each event's data decodes as it would alone.
        data = _decode(chunk[6:-2]).split("\n\ndata: ")
        # Each event but the first begins after a blank line, and no line break is
        # there but the two after each event: counted, not looked for line by line.
        if chunk.count(b"\n") != 2 * len(data):
            return None
        self.last_event_id = self._id  # §2.5, as _dispatch does
        self._started = True
        return data

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._at_boundary and self._ends_an_event(chunk):
            event = self._whole_event(chunk)
            if event is not None:
                return [event]
        self._at_boundary = False  # until the general path is through (it may raise)
        events: list[ServerSentEvent] = []
        try:
            self._feed_lines(chunk, events)
            self._check_bounds()
        except RemoteProtocolError as fault:  # the events before it are still relayed
            fault.read_before = events
            raise
        # A read after lines that carried no event takes this path too, whose next
        # event clears their count: the shortcuts need not keep it.
        self._at_boundary = self._started and not self._buffer and not self._data and \
            not self._event and not self._pending_cr and not self._without_event
        return events

    def _feed_lines(self, chunk: bytes, events: list[ServerSentEvent]) -> None:
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":  # §2.2: CR then LF across reads is ONE line ending
                chunk = chunk[1:]
        if not self._started:
            chunk = self._strip_bom(chunk)
            if not self._started:
                return
        if self._buffer:
            if 10 not in chunk and 13 not in chunk:  # no LF, no CR
                self._buffer += chunk  # a long line in small reads: no quadratic copying
                self._check_line_length()
                return
            chunk = bytes(self._buffer) + chunk
            self._buffer = bytearray()
        if chunk.endswith(b"\r"):
            self._pending_cr = True
        lines = _LINE_BREAK.split(chunk) if 13 in chunk else chunk.split(b"\n")
        self._buffer = bytearray(lines.pop())
        # Lines are decoded whole, so a character split across reads is already joined.
        for line in lines:
            self._line(_decode(line), events)
        self._check_line_length()  # after the whole lines: their events come first

    @staticmethod
    def _ends_an_event(chunk: bytes) -> bool:
        """With nothing pending, the shortcuts' precondition: ``chunk`` ends an event,
        with LF line endings only."""
        # 13, not b"\r": "in" tries a bytes needle as an int first and pays for the
        # failed conversion, several times the cost of the search
        return chunk.endswith(b"\n\n") and 13 not in chunk

    def _whole_event(self, chunk: bytes) -> ServerSentEvent | None:
        """The common read, parsed with fewer steps: one whole ``data:`` line, or an
        ``event:`` line and a ``data:`` line, then the blank line. None for any other
        shape (the general path takes it)."""
        lines = chunk.count(b"\n")
        if lines == 2 and chunk.startswith(b"data:"):
            name = "message"
            value = chunk[5:-2]
        elif lines == 3 and chunk.startswith(b"event:"):
            split = chunk.find(b"\n")
            if not chunk.startswith(b"data:", split + 1):
                return None
            name_bytes = chunk[6:split]
            name = _decode(name_bytes[1:] if name_bytes[:1] == b" " else name_bytes) or \
                "message"
            value = chunk[split + 6:-2]
        else:
            return None
        self.last_event_id = self._id  # §2.5, as _dispatch does
        self._started = True
        return ServerSentEvent(name, _decode(value[1:] if value[:1] == b" " else value),
                               self._id, self.retry)

    def _check_bounds(self) -> None:
        if self._without_event > self._max_without_event:
            self._without_event = 0
            raise NoEvents(f"more than {self._max_without_event} bytes without an event")
        # summed once a read, and only while an event is unfinished: a data line pays
        # nothing, and the sum stops growing at the bound
        data = self._data
        if data and sum(map(len, data)) + len(data) > self._max_event:
            self._data = []
            raise EventTooLarge(f"event-stream event longer than {self._max_event} bytes")

    def _check_line_length(self) -> None:
        length = len(self._buffer)
        if length > self._max_line:
            self._buffer = bytearray()
            raise EventTooLarge(f"event-stream line longer than {self._max_line} bytes")
        # an unfinished data line is the data of an unfinished event: the same bound
        if length > self._max_event + 5 and self._buffer.startswith(b"data"):
            self._buffer = bytearray()
            raise EventTooLarge(f"event-stream event longer than {self._max_event} bytes")

    def end(self) -> list[ServerSentEvent]:
        """End of a body that its HTTP framing ended (not a cut connection): an event
        whose lines all came whole, with only the blank line after it missing, is
        dispatched, where §2.6 would drop it. Anthropic's SDK fixtures end so, and
        the SDKs read such a stream as complete. A partial line is still dropped."""
        events: list[ServerSentEvent] = []
        if not self._buffer and self._data:
            self._dispatch(events)
        self.close()
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream: a partial line and an unterminated event are dropped (§2.6)."""
        self._buffer = bytearray()
        self._data = []
        self._without_event = 0
        self._event = ""
        self._id = self.last_event_id  # an unfinished block's id is discarded (§2.6)
        self._pending_cr = False
        self._at_boundary = True
        return []

    def _strip_bom(self, chunk: bytes) -> bytes:
        # §2.1: one BOM at the very start is removed, even when split across reads
        head = bytes(self._buffer) + chunk
        if len(head) < 3 and b"\xef\xbb\xbf".startswith(head):
            self._buffer = bytearray(head)
            return b""
        self._started = True
        self._buffer = bytearray()
        body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
        if self._refuse_documents:
            if _OTHER_DOCUMENT.match(body):
                raise NotAnEventStream("the body is JSON or HTML, not an event stream",
                                       offset=0)
            if not body.strip(b" \t\r\n"):  # blanks alone say nothing yet (and are none)
                self._started = False
                return b""
        return body

    def _line(self, line: str, events: list[ServerSentEvent]) -> None:
        if not line:
            if not self._data:
                self._without_event += 1  # a blank line that ends no event
            self._dispatch(events)
            return
        if line[0] == ":":
            self._without_event += len(line) + 1
            return  # §2.3: a comment
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]  # §2.3: exactly one leading space is removed
        if name == "data":
            self._data.append(value)
            return
        self._without_event += len(line) + 1
        if name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:  # §2.4: an id containing NUL is ignored
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        # §2.5: the id buffer becomes the last event ID even when nothing fires; an
        # empty data buffer fires nothing, and the event type is cleared either way
        self.last_event_id = self._id
        if self._data:
            data = "\n".join(self._data)
            self._data = []
            if len(data) > self._max_event:  # its last lines came in the read that ended it
                self._event = ""
                raise EventTooLarge(f"event-stream event longer than {self._max_event} bytes")
            events.append(ServerSentEvent(self._event or "message", data, self._id,
                                          self.retry))
            self._without_event = 0
        self._event = ""


def _decode(line: bytes) -> str:
    try:
        return line.decode()
    except UnicodeDecodeError:  # §2.1: invalid sequences become U+FFFD
        return line.decode("utf-8", "replace")
