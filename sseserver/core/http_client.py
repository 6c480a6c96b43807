"""The client's side of HTTP/1.1 heads, sans-IO: the request we send, the head we read.

h11 took ~25 µs to build and check an upstream request and ~30 µs to read the response
head (benchmarks/bench_hot_path.py), most of a stream's setup. Here a request is one
string format checked by one regex, and a response head is one regex match over the
whole head, then a split into fields. Both hold to what h11 0.16 accepts and refuses,
which the differential tests in tests/core/test_http_client.py check against h11
itself. The body after the head is core/chunked.py's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sseserver.errors import LocalProtocolError, RemoteProtocolError

# h11's max_incomplete_event_size: a head still incomplete past this many bytes is
# refused. h11 measures only incomplete heads (a longer head that arrives in one read
# passes); here the head is measured whole, up to its last byte, so the verdict is the
# strictest h11 gives, whatever the reads: a head of MAX_HEAD_SIZE + 1 bytes passes.
MAX_HEAD_SIZE = 16 * 1024
# RFC 9110 §8.6: Content-Length is 1*DIGIT; h11 caps it at 20 digits (10**20 bytes).
MAX_CONTENT_LENGTH_DIGITS = 20

# RFC 9110 §5.6.2 token: a method and a field name.
_TOKEN = r"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
# Field-line text as h11 reads it (RFC 9110 §5.5 plus what h11 tolerates): visible
# characters, obs-text, SP, HTAB, DEL and the C0 controls but NUL, LF, VT, FF and CR.
_TEXT = r"[^\x00\n\x0b\x0c\r]*"

# -- requests ------------------------------------------------------------------------

# A field value as h11 sends one: no whitespace at either end, no NUL, CR, LF, VT or FF.
_VALUE_CHAR = r"[^\x00\t\n\x0b\x0c\r ]"
_VALUE = rf"(?:{_VALUE_CHAR}+(?:[ \t]+{_VALUE_CHAR}+)*)?"
# RFC 9112 §3: request-line; a target is visible ASCII only (h11's request_target).
_REQUEST_HEAD = re.compile(
    rf"{_TOKEN} [\x21-\x7e]+ HTTP/1\.1\r\n(?:{_TOKEN}: {_VALUE}\r\n)*\r\n")
_NAME = re.compile(_TOKEN)
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
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {host}\r\n"]
    for name, value in headers:
        if name not in _valid_names:
            _check_name(name)
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"content-length: {len(body)}\r\n\r\n")
    head = "".join(lines)
    # A CR LF inside a value would make a well-formed extra line: count the lines.
    if head.count("\n") != len(headers) + 4 or _REQUEST_HEAD.fullmatch(head) is None:
        raise LocalProtocolError(_explain_request(method, target, host, headers))
    try:
        return head.encode("ascii") + body
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
            return f"invalid value for request header {name!r}: {value!r}"
    return "invalid request head"


# -- responses -----------------------------------------------------------------------

# RFC 9112 §2.2 and h11: a head ends at the first empty line, CRLF or bare LF.
_BLANK_LINE = re.compile(rb"\n\r?\n")
# The whole head: status line (the reason phrase may be missing, as h11 allows), then
# field lines, each maybe followed by obs-fold continuation lines (RFC 9112 §5.2), then
# the empty line. Each line may end in CRLF or a bare LF.
_STATUS_LINE = rf"HTTP/([0-9]\.[0-9]) ([0-9]{{3}})(?: ({_TEXT}))?\r?\n"
_FIELD_LINES = rf"(?:{_TOKEN}:{_TEXT}\r?\n(?:[ \t]{_TEXT}\r?\n)*)*"
_RESPONSE_HEAD = re.compile(rf"{_STATUS_LINE}({_FIELD_LINES})\r?\n")
# RFC 9112 §5.2: a recipient replaces each obs-fold with SP (h11 does, then strips).
_OBS_FOLD = re.compile(r"\r?\n[ \t]+")
_CONTINUATION = re.compile(r"\n[ \t]")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A final (non-1xx) response head; text is the head's bytes read as Latin-1.
    The defaults let a test or a fake build one from a status and headers alone."""

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
    start of the body. Bytes fed after that are appended to ``rest``.
    """

    __slots__ = ("_buffer", "_max_size", "_searched", "head", "interim", "rest")

    def __init__(self, max_size: int = MAX_HEAD_SIZE) -> None:
        self._buffer = b""
        self._max_size = max_size
        self._searched = 0  # the empty line is not in _buffer before this offset
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

        Raises :class:`RemoteProtocolError` for a head h11 would refuse, an unsolicited
        101, or a head over the size limit.
        """
        if self.head is not None:
            self.rest += data
            return self.head
        buffer = self._buffer + data if self._buffer else data
        while buffer:
            end = self._find_end(buffer)
            if end < 0:
                self._buffer = buffer
                return None
            head = _parse_head(buffer[:end])
            buffer = buffer[end:]
            self._searched = 0
            if head is not None:
                self.head, self.rest, self._buffer = head, buffer, b""
                return head
            self.interim += 1
        self._buffer = b""
        return None

    def _find_end(self, buffer: bytes) -> int:
        """Where the head at the start of ``buffer`` ends, or -1 while incomplete."""
        # h11 refuses at once a head whose first byte is a control or space: no status
        # line starts so (a TLS record, or an empty line, is the usual culprit).
        if buffer[0] < 0x21:
            raise RemoteProtocolError(f"not an HTTP response: {buffer[:20]!r}")
        blank = _BLANK_LINE.search(buffer, self._searched)
        # Measured up to the head's last byte, or all of it while it has not ended
        # (see MAX_HEAD_SIZE).
        if (len(buffer) if blank is None else blank.end() - 1) > self._max_size:
            raise RemoteProtocolError(f"response head longer than {self._max_size} bytes")
        if blank is None:
            self._searched = max(len(buffer) - 2, 0)  # the empty line may straddle reads
            return -1
        return blank.end()


def _parse_head(head: bytes) -> ResponseHead | None:
    """The final head, or None for an interim 1xx one; raises if malformed."""
    text = head.decode("latin-1")
    match = _RESPONSE_HEAD.fullmatch(text)
    if match is None:
        raise RemoteProtocolError(_explain_response(text))
    http_version, status_code, reason, lines = match.groups()
    status = int(status_code)
    if status < 100:
        raise RemoteProtocolError(f"invalid status code {status_code}")
    if status == 101:  # RFC 9110 §15.2.2: a switch we never asked for with Upgrade
        raise RemoteProtocolError("101 Switching Protocols without an Upgrade request")
    if _CONTINUATION.search(lines) is not None:
        lines = _OBS_FOLD.sub(" ", lines)
    fields = _fields(lines)
    if status < 200:
        return None
    return ResponseHead(status, dict(fields), http_version, reason or "", fields)


def _fields(lines: str) -> list[tuple[str, str]]:
    """Validated, unfolded field lines to (lower-case name, value without OWS) pairs;
    Content-Length and Transfer-Encoding checked as h11 does."""
    fields: list[tuple[str, str]] = []
    content_length: str | None = None
    chunked = False
    for line in lines.split("\n")[:-1]:  # each line ends in LF: the last piece is empty
        raw_name, _, value = line.partition(":")
        name = raw_name.lower()
        value = value.strip(" \t\r")  # OWS, and the CR of a CRLF (values hold no CR)
        if name == "content-length":
            value = _content_length(value)
            if content_length is not None:  # h11 keeps the first of equal copies
                if value != content_length:
                    raise RemoteProtocolError("conflicting Content-Length headers")
                continue
            content_length = value
        elif name == "transfer-encoding":
            # RFC 9112 §6.1: chunked is the only coding h11 (and a gateway) decodes.
            if chunked:
                raise RemoteProtocolError("multiple Transfer-Encoding headers")
            value = value.lower()
            if value != "chunked":
                raise RemoteProtocolError(f"unsupported Transfer-Encoding {value!r}")
            chunked = True
        fields.append((name, value))
    return fields


def _content_length(value: str) -> str:
    # RFC 9110 §8.6: a list of identical lengths ("5, 5") may be taken as one.
    lengths = {length.strip(" \t") for length in value.split(",")}
    if len(lengths) != 1:
        raise RemoteProtocolError(f"conflicting Content-Length values {value!r}")
    length = lengths.pop()
    if _DIGITS.fullmatch(length) is None or len(length) > MAX_CONTENT_LENGTH_DIGITS:
        raise RemoteProtocolError(f"invalid Content-Length {value!r}")
    return length


def _explain_response(text: str) -> str:
    """Which line of a refused head is at fault (only on the error path)."""
    status_line, _, rest = text.partition("\n")
    if re.fullmatch(_STATUS_LINE, status_line + "\n") is None:
        return f"malformed status line {status_line[:80]!r}"
    for line in rest.split("\n"):
        line = line.removesuffix("\r")
        if line and re.fullmatch(rf"(?:{_TOKEN}:|[ \t]){_TEXT}", line) is None:
            return f"malformed header line {line[:80]!r}"
    return "a continuation line before the first header"
