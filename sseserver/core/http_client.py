"""The client's side of HTTP/1.1 heads, sans-IO: the request we send, the head we read.

A response head comes from a server we do not control and is read by h11 (client
role), the most-vetted HTTP/1.1 parser in Python: :class:`ResponseHeadParser` frames
each head (its end, its size limit), hands the whole head to h11 and turns h11's event
into a :class:`ResponseHead`. h11's error messages quote the peer's bytes, which may
carry a secret, so a refused head is explained here instead, by the grammar's rules,
with a fixed message and the offset of the byte at fault. A request is ours to write:
one string format checked by one regex (h11 took ~25 µs to build and check one),
which the differential tests in tests/core/test_http_client.py hold to h11's bytes.
The grammar a response head shares with a request head is core/http_fields.py's; the
body after the head is core/chunked.py's, framed as :func:`body_decoder` says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import h11

from sseserver.core.chunked import BodyDecoder, ChunkedDecoder, LengthDecoder, UntilCloseDecoder
from sseserver.core.http_fields import (
    FIELD_LINES,
    MAX_HEAD_SIZE,
    TEXT,
    TOKEN,
    field_lines_fault,
    find_head_end,
    parse_field_lines,
    resume_search_at,
)
from sseserver.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["MAX_HEAD_SIZE", "ResponseHead", "ResponseHeadParser", "body_decoder",
           "encode_request", "first_final_head"]

# -- requests ------------------------------------------------------------------------

# A field value as h11 sends one: no whitespace at either end, no NUL, CR, LF, VT or FF.
_VALUE_CHAR = r"[^\x00\t\n\x0b\x0c\r ]"
_VALUE = rf"(?:{_VALUE_CHAR}+(?:[ \t]+{_VALUE_CHAR}+)*)?"
# RFC 9112 §3: request-line; a target is visible ASCII only (h11's request_target).
_REQUEST_HEAD = re.compile(
    rf"{TOKEN} [\x21-\x7e]+ HTTP/1\.1\r\n(?:{TOKEN}: {_VALUE}\r\n)*\r\n")
_NAME = re.compile(TOKEN)
# Framing and routing are ours to write: a caller's copy would conflict with them.
_RESERVED_NAMES = frozenset({"host", "content-length", "transfer-encoding"})
# Names already checked; a client sends a small fixed set of them.
_valid_names: set[str] = set()
_MAX_CACHED_NAMES = 256


def encode_request(method: str, target: str, host: str,
                   headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    """The whole request as one bytes object: request line, ``host`` first, the
    caller's headers in order, ``content-length`` last, the blank line, the body.

    Raises :class:`LocalProtocolError` for what h11 would refuse to send: a method or
    header name that is not a token, a target with anything but visible ASCII, a
    value with NUL, CR, LF, VT or FF or with whitespace at either end, any text
    beyond ASCII; and for a ``host``, ``content-length`` or ``transfer-encoding``
    header among ``headers`` (those are written here).
    """
    last = _last_head[0]
    if headers is last[3] and method == last[0] and target == last[1] and host == last[2]:
        head = last[4]  # the very headers of the last request: its head
    else:
        head = _head_for(method, target, host, headers)
    return b"%bcontent-length: %d\r\n\r\n%b" % (head, len(body), body)


def _head_for(method: str, target: str, host: str,
              headers: Sequence[tuple[str, str]]) -> bytes:
    """:func:`_checked_head`, from the table of heads already built when it is there."""
    key = (method, target, host, *headers)
    try:
        head = _checked_heads.get(key)
    except TypeError:  # a field as a list (one read back from JSON): built each time
        return _checked_head(method, target, host, headers)
    if head is None:
        head = _checked_head(method, target, host, headers)
        if len(_checked_heads) >= _MAX_CACHED_HEADS:
            _checked_heads.clear()
        _checked_heads[key] = head
    if type(headers) is tuple:  # fields as tuples of text: nothing in them can change
        _last_head[0] = (method, target, host, headers, head)
    return head


# The last request's method, target, host, headers (a tuple, which a provider builds
# once per settings and gives every request) and head: a request with those very
# headers takes the head without building its table key (a tuple of every field,
# hashed field by field) and looking it up.
_last_head: list[tuple[str, str, str, object, bytes]] = [("", "", "", None, b"")]


# Heads already built and checked, up to the content-length line: a gateway sends the
# same few (one per provider, key and endpoint) again and again, and building and
# checking one costs more than the rest of a request's bytes.
_checked_heads: dict[tuple[object, ...], bytes] = {}
# Far more than the endpoints times the keys of any configuration; a fuller table is
# emptied (the heads are rebuilt as they are sent) rather than let grow.
_MAX_CACHED_HEADS = 256


def _checked_head(method: str, target: str, host: str,
                  headers: Sequence[tuple[str, str]]) -> bytes:
    """The head of :func:`encode_request` without its content-length line, checked."""
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {host}\r\n"]
    for name, value in headers:
        if name not in _valid_names:
            _check_name(name)
        lines.append(f"{name}: {value}\r\n")
    head = "".join(lines)
    # A CR LF inside a value would make a well-formed extra line: count the lines.
    if head.count("\n") != len(headers) + 2 or \
            _REQUEST_HEAD.fullmatch(f"{head}content-length: 0\r\n\r\n") is None:
        raise LocalProtocolError(_explain_request(method, target, host, headers))
    try:
        return head.encode("ascii")
    except UnicodeEncodeError:
        raise LocalProtocolError("a request head must be ASCII text") from None


def _check_name(name: str) -> None:
    if _NAME.fullmatch(name) is None:
        raise LocalProtocolError(f"invalid request header name {name!r}")
    if name.lower() in _RESERVED_NAMES:
        raise LocalProtocolError(f"the {name.lower()} header is written by encode_request")
    if len(_valid_names) < _MAX_CACHED_NAMES:
        _valid_names.add(name)


def _explain_request(method: str, target: str, host: str,
                     headers: Sequence[tuple[str, str]]) -> str:
    if _NAME.fullmatch(method) is None:
        return f"invalid request method {method!r}"
    if re.fullmatch(r"[\x21-\x7e]+", target) is None:
        return f"invalid request target {target!r}"
    for name, value in (("host", host), *headers):
        if re.fullmatch(_VALUE, value) is None:
            # never the value itself: it may be a provider's key, and this message can
            # reach a log and a client
            return f"invalid value for request header {name!r}"
    return "invalid request head"


# -- responses -----------------------------------------------------------------------

# The request h11 is told was sent: a client-role h11 reads a response only after one.
# POST, so that no response is taken to have no body (as one to HEAD would be); no
# Upgrade, so that a 101 is refused (RFC 9110 §15.2.2: a switch we never asked for).
_SENT_REQUEST = h11.Request(method="POST", target="/", headers=[("host", "upstream")])


@dataclass(slots=True)
class ResponseHead:
    """A final (non-1xx) response head. The defaults let a test or a fake build one
    from a status and headers alone. Nothing changes one once it is read; it is not
    frozen only because a frozen dataclass sets each field through
    ``object.__setattr__``, three times the cost of making one, once a response."""

    status: int
    # Lower-case names; a repeated field keeps its last value (use ``fields`` for all).
    headers: dict[str, str]
    http_version: str = "1.1"
    reason: str = ""
    # Every field line in order (continuations unfolded), with lower-case names;
    # Content-Length and Transfer-Encoding as h11 normalizes them.
    fields: list[tuple[str, str]] = field(default_factory=list)


class ResponseHeadParser:
    """Feed what the server sends; get the final response head once it is whole.

    Interim 1xx responses before it are read and dropped (``interim`` counts them).
    Once :meth:`feed` returns the head, ``rest`` holds the bytes that followed it: the
    start of the body. Bytes fed after that are appended to ``rest``. h11 sees each
    head whole and nothing after it: the body is never copied into its buffer.
    """

    __slots__ = ("_buffer", "_max_size", "_reader", "_searched", "head", "interim", "rest")

    def __init__(self, max_size: int = MAX_HEAD_SIZE) -> None:
        self._buffer = b""
        self._max_size = max_size
        self._searched = 0  # the empty line is not in _buffer before this offset
        self._reader: h11.Connection | None = None  # made with the first whole head
        self.head: ResponseHead | None = None
        self.interim = 0
        self.rest = b""

    def __repr__(self) -> str:
        state = "done" if self.head is not None else f"buffered={len(self._buffer)}"
        return f"<ResponseHeadParser {state} interim={self.interim}>"

    @property
    def buffered(self) -> int:
        """Bytes of a head that has not ended yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> ResponseHead | None:
        """The final head once complete, else None.

        Raises :class:`RemoteProtocolError` for a head h11 refuses (an unsolicited 101
        included) or one over the size limit; its message names the rule and its
        ``offset`` the byte at fault (see :class:`ProtocolError`), never quoting them.
        """
        if self.head is not None:
            self.rest += data
            return self.head
        if self._reader is None and not self._buffer:
            # A whole final head in the first read, as nearly every one comes: the
            # loop's steps below without their calls; anything else goes through them.
            first = first_final_head(data, self._max_size)
            if first is not None:
                self.head, self.rest = first
                return first[0]
        # where the buffer starts, counted from the start of data (interim heads move it)
        start = -len(self._buffer)
        buffer = self._buffer + data if self._buffer else data
        while buffer:
            try:
                end = self._find_end(buffer)
                if end < 0:
                    self._buffer = buffer
                    return None
                head = self._read(buffer[:end])
            except RemoteProtocolError as exc:
                if exc.offset is not None:
                    exc.offset += start
                raise
            buffer = buffer[end:]
            start += end
            self._searched = 0
            if head is not None:
                self.head, self.rest, self._buffer = head, buffer, b""
                return head
            self.interim += 1
        self._buffer = b""
        return None

    def _find_end(self, buffer: bytes) -> int:
        """Where the head at the start of ``buffer`` ends, or -1 while incomplete."""
        end = find_head_end(buffer, self._searched, self._max_size)
        if end < 0:
            self._searched = resume_search_at(buffer)
        return end

    def _read(self, head: bytes) -> ResponseHead | None:
        """h11's reading of one whole head: the final head, or None for an interim one.
        Raises :class:`RemoteProtocolError` in our words when h11 refuses it."""
        if self._reader is None:  # no interim head before: the common case first
            final = _read_final_head(head)
            if final is not None:
                return final
        return self._read_after_request(head)

    def _read_after_request(self, head: bytes) -> ResponseHead | None:
        """``head`` as h11 reads it after a request: any head, interim ones included,
        and the verdict on one it refuses."""
        reader = self._reader
        if reader is None:
            reader = self._reader = h11.Connection(h11.CLIENT)
            reader.send(_SENT_REQUEST)
        reader.receive_data(head)
        try:
            event = reader.next_event()
        except h11.RemoteProtocolError:
            raise _refusal(head) from None  # h11's message may quote the head
        if isinstance(event, h11.InformationalResponse):
            return None
        if not isinstance(event, h11.Response):  # h11 framed the head otherwise
            raise _refusal(head)
        return _response_head(event)


def first_final_head(data: bytes, max_size: int = MAX_HEAD_SIZE
                     ) -> tuple[ResponseHead, bytes] | None:
    """The final head that ``data``, a response's first read, holds whole, and the bytes
    after it (the start of the body); None for anything else (a head not ended yet, an
    interim head, a refused one), which :class:`ResponseHeadParser` fed the same
    ``data`` decides. As nearly every head comes so, a caller may try this first and
    make a parser only when it gives None: the head is then read as the parser reads
    it (its own first step is this).

    Raises :class:`RemoteProtocolError` as :meth:`ResponseHeadParser.feed` does for a
    read no head begins or a head longer than ``max_size``.
    """
    end = find_head_end(data, 0, max_size)
    if end > 0:
        final = _read_final_head(data[:end])
        if final is not None:
            return final, data[end:]
    return None


def _read_final_head(head: bytes) -> ResponseHead | None:
    """``head`` read by an h11 client told of no request, if h11 takes it as a final
    response; None for anything else (an interim head, a refused one), which
    :meth:`ResponseHeadParser._read_after_request` reads again and decides.

    h11's own state table lets a server answer before it read a request: an idle
    server's final response is read by the same reader, checked by the same rules and
    moves to the same state as one after a request, and an interim one is refused
    there (tests/core/test_http_client.py holds the two readings equal). Sending h11 the
    request first cost a fifth of reading the head."""
    reader = h11.Connection(h11.CLIENT)
    reader.receive_data(head)
    try:
        event = reader.next_event()
    except h11.RemoteProtocolError:
        return None
    return _response_head(event) if type(event) is h11.Response else None


# Field names already turned to text, by their bytes as sent: a provider sends the
# same few dozen names in every head (an API's answer has twenty fields or more), and
# a look-up costs half of lower() and decode(). Only the text of names h11 accepted;
# every head is read by h11 all the same.
_field_names: dict[bytes, str] = {}
# Several times the names of any provider's heads; a fuller table (a peer that sends
# ever new names) is emptied rather than let grow.
_MAX_FIELD_NAMES = 512


def _response_head(event: h11.Response) -> ResponseHead:
    # raw_items and lower(), as h11 lowers names: its own iteration costs twice this
    names = _field_names
    fields = [(names.get(name) or _field_name(name), value.decode("latin-1"))
              for name, value in event.headers.raw_items()]
    return ResponseHead(event.status_code, dict(fields), event.http_version.decode(),
                        event.reason.decode("latin-1"), fields)


def _field_name(raw: bytes) -> str:
    """``raw``, a field name as sent, as a head's fields name it (lower-case text)."""
    name = raw.lower().decode("latin-1")
    if len(_field_names) >= _MAX_FIELD_NAMES:
        _field_names.clear()
    _field_names[raw] = name
    return name


# The grammar of a head, to explain a refusal (h11 has accepted every head it reads
# whole): the status line (the reason phrase may be missing, as h11 allows), the field
# lines, the empty line.
_STATUS_LINE = rf"HTTP/([0-9]\.[0-9]) ([0-9]{{3}})(?: ({TEXT}))?\r?\n"
_RESPONSE_HEAD = re.compile(rf"{_STATUS_LINE}({FIELD_LINES})\r?\n")
# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]; the
# version is 8 bytes, so the code starts at byte 9 and the reason at byte 13.
_STATUS_CODE_AT = 9
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9] ")
_CODE = re.compile(r"[0-9]{3}(?: |\r?$)")
_REASON_CHAR = re.compile(TEXT)


def _refusal(head: bytes) -> RemoteProtocolError:
    """Why h11 refuses ``head`` (a whole head), in a fixed message naming the rule,
    with the offset in ``head`` of the fault when one byte is at fault. Nothing of the
    head is quoted: it may carry a secret (a proxy echoing the request's key)."""
    text = head.decode("latin-1")
    match = _RESPONSE_HEAD.fullmatch(text)
    if match is None:
        message, offset = _explain_response(text)
        return RemoteProtocolError(message, offset=offset)
    status = int(match.group(2))
    if status < 100:
        return RemoteProtocolError("a status code below 100", offset=_STATUS_CODE_AT)
    if status == 101:
        return RemoteProtocolError("101 Switching Protocols without an Upgrade request",
                                   offset=_STATUS_CODE_AT)
    try:
        parse_field_lines(match.group(4))  # the Content-Length and coding rules
    except RemoteProtocolError as exc:
        return exc
    return RemoteProtocolError("malformed response head")  # a rule of h11's alone


def _explain_response(text: str) -> tuple[str, int]:
    """Which rule of the grammar a refused head breaks, and the offset of the fault."""
    status_line, newline, rest = text.partition("\n")
    if re.fullmatch(_STATUS_LINE, status_line + "\n") is None:
        return _status_line_fault(status_line)
    message, offset = field_lines_fault(rest)
    return message, len(status_line) + len(newline) + offset


def _status_line_fault(line: str) -> tuple[str, int]:
    if not line.startswith("HTTP/"):
        return "malformed status line: it does not start with HTTP/", 0
    if _VERSION.match(line) is None:
        return "malformed status line: the HTTP version is not digit.digit and a space", 5
    if _CODE.match(line, _STATUS_CODE_AT) is None:
        return "malformed status line: the status code is not three digits", _STATUS_CODE_AT
    reason = line.removesuffix("\r")
    valid = _REASON_CHAR.match(reason, _STATUS_CODE_AT + 4)
    at = valid.end() if valid is not None else _STATUS_CODE_AT + 4
    return "malformed status line: a forbidden control character in the reason phrase", at


def body_decoder(head: ResponseHead) -> BodyDecoder:
    """How the body after ``head`` is delimited (RFC 9112 §6.3)."""
    headers = head.headers
    if head.status in (204, 304) or 100 <= head.status < 200:
        return LengthDecoder(0)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return ChunkedDecoder()
    length = headers.get("content-length")
    if length is not None:
        return LengthDecoder(int(length))  # the head parser has validated it
    return UntilCloseDecoder()
