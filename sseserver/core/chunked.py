"""HTTP/1.1 body decoding by hand, sans-IO (RFC 9112 §6-§7).

h11 receives one body chunk in ~4.6 µs; on the gateway's per-token hot path that is
more than everything else together. These decoders read the response bodies providers
send (aio/upstream.py; a client's request body is h11's to read, core/h11_server.py).
They accept exactly what h11 0.16 accepts and reject what it rejects (the differential
tests in tests/core/test_chunked.py hold them to that), and raise
:class:`RemoteProtocolError` for anything malformed.
"""

from __future__ import annotations

import re

from sseserver.core.http_fields import HEAD_TOO_LARGE_STATUS, normalize_fields
from sseserver.errors import RemoteProtocolError

# A chunk-size line (size, optional extensions) or trailer section still incomplete
# past this many bytes is refused, with h11's 431 hint: h11 caps incomplete events at
# 16 KiB, and real peers send a handful of hex digits.
MAX_CHUNK_LINE = 16 * 1024
# RFC 9112 §7.1: chunk-size is 1*HEXDIG, then optional ;extensions, which h11 ignores
# (bare CR included, reference/http-hardening.md): the same pattern as h11's.
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*")
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")
# Chunk-size fields already validated, to their sizes: a provider's chunks come in a
# few hundred sizes, and a dict lookup costs a fifth of the regex and int() it saves.
_KNOWN_SIZES: dict[bytes, int] = {}
_MAX_KNOWN_SIZES = 4096
# A trailer field line, token ":" OWS value OWS (RFC 9110 §5.1), with the same value
# grammar h11 uses: visible characters (or obs-text) separated by spaces and tabs.
_TRAILER_FIELD = re.compile(
    rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+:[ \t]*(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?[ \t]*")
# The end of the trailer section: a blank line, CRLF or bare LF endings (as h11).
_BLANK_LINE = re.compile(rb"\n\r?\n")
# The last chunk with no extension, then the end of an empty trailer section: how a
# body ends, mostly in the read of its last chunk with data.
_LAST_CHUNK = b"0\r\n\r\n"


class ChunkedDecoder:
    """Feed body bytes; get the payload pieces. ``done`` once the last chunk and the
    trailer section have arrived; bytes after that are kept in ``trailing``.

    :meth:`feed` raises :class:`RemoteProtocolError` for a malformed body, a trailer
    field h11 refuses (Content-Length and Transfer-Encoding rules included), and a
    size line or trailer section still incomplete past ``max_line`` bytes; its
    ``offset`` is where the size line, chunk end or trailer section at fault begins.
    """

    __slots__ = ("_buffer", "_max_line", "_remaining", "_state", "done", "trailing")

    def __init__(self, max_line: int = MAX_CHUNK_LINE) -> None:
        self._buffer = b""
        self._max_line = max_line
        self._remaining = 0  # payload bytes still due in the current chunk
        self._state = _SIZE
        self.done = False
        self.trailing = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The payload pieces ``data`` completes, in order (maybe none)."""
        if self._state is _SIZE and not self._buffer:
            # The common read, as a provider flushes each event: exactly one whole chunk
            # with a payload. Inline: this runs once per token.
            line_end = data.find(b"\r\n", 0, 22)
            if line_end > 0:
                field = data[:line_end]
                size = _KNOWN_SIZES.get(field) or _chunk_size(field)
                if size and len(data) == line_end + size + 4 and data.endswith(b"\r\n"):
                    return [data[line_end + 2:-2]]
                if data.endswith(_LAST_CHUNK):
                    return self._end_of_body(data, line_end, size)
        return self._decode(data)

    def _end_of_body(self, data: bytes, line_end: int, size: int) -> list[bytes]:
        """:meth:`feed`'s shortcut for a read that ends the body (a provider's last
        read): the last chunk alone, or one whole chunk then the last chunk, with no
        extension and no trailer field. Any other read ending so goes the general way."""
        if data == _LAST_CHUNK:
            pieces = []
        elif size and len(data) == line_end + size + 4 + len(_LAST_CHUNK) and \
                data.startswith(b"\r\n", line_end + 2 + size):
            pieces = [data[line_end + 2:line_end + 2 + size]]
        else:
            return self._decode(data)
        self._state = _TRAILER
        self.done = True
        return pieces

    def _decode(self, data: bytes) -> list[bytes]:
        """:meth:`feed` for any read, whatever the state: the general path, which the
        shortcut must equal (tests/core/test_chunked.py drives both)."""
        if self.done:
            self.trailing += data
            return []
        buffered = len(self._buffer)
        buffer = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        position = _whole_chunks(buffer, out) if self._state is _SIZE and not buffered else 0
        end = len(buffer)
        try:
            while position < end:
                state = self._state
                if state is _DATA:
                    take = min(self._remaining, end - position)
                    out.append(buffer[position:position + take])
                    position += take
                    self._remaining -= take
                    if not self._remaining:
                        self._state = _DATA_END
                elif state is _SIZE:
                    line_end = buffer.find(b"\r\n", position)
                    if line_end < 0:
                        self._check_line(end - position)
                        break
                    self._start_chunk(buffer[position:line_end])
                    position = line_end + 2
                elif state is _DATA_END:
                    if end - position < 2:
                        if buffer[position:end] != b"\r"[:end - position]:
                            raise RemoteProtocolError("chunk data not followed by CRLF")
                        break
                    if buffer[position:position + 2] != b"\r\n":
                        raise RemoteProtocolError("chunk data not followed by CRLF")
                    position += 2
                    self._state = _SIZE
                else:  # the trailer section: judged whole, when its blank line is in (as h11)
                    rest = self._trailer_section(buffer, position)
                    if rest is None:
                        self._check_line(end - position)
                        break
                    self.done = True
                    self.trailing = buffer[rest:]
                    position = end
                    break
        except RemoteProtocolError as exc:
            exc.offset = position - buffered  # where the element at fault begins
            exc.read_before = out  # the chunks before the fault are the provider's words
            raise
        self._buffer = buffer[position:] if not self.done else b""
        return out

    @staticmethod
    def _trailer_section(buffer: bytes, start: int) -> int | None:
        """Where the bytes after the trailer section begin; None while incomplete.
        Raises for a malformed field line."""
        for blank in (b"\r\n", b"\n"):
            if buffer.startswith(blank, start):
                return start + len(blank)
        match = _BLANK_LINE.search(buffer, start)
        if match is None:
            return None
        fields: list[bytes] = []
        for line in buffer[start:match.start()].split(b"\n"):
            line = line.removesuffix(b"\r")
            if line[:1] in (b" ", b"\t"):  # obs-fold: h11 unfolds continuation lines
                if not fields:
                    raise RemoteProtocolError("trailer section starts with a continuation")
                fields[-1] += b" " + line.strip(b" \t")
            else:
                fields.append(line)
        for field in fields:
            if _TRAILER_FIELD.fullmatch(field) is None:
                raise RemoteProtocolError("malformed trailer line")
        # h11 holds trailers to the header rules: a bad Content-Length or coding fails
        normalize_fields(field.decode("latin-1") for field in fields)
        return match.end()

    def _start_chunk(self, line: bytes) -> None:
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise RemoteProtocolError("malformed chunk size line: not hex digits with "
                                      "optional extensions")
        size = int(match.group(1), 16)
        if size:
            self._remaining = size
            self._state = _DATA
        else:
            self._state = _TRAILER

    def _check_line(self, pending: int) -> None:
        if pending > self._max_line:
            raise RemoteProtocolError("chunk size or trailer line too long",
                                      HEAD_TOO_LARGE_STATUS)


def _whole_chunks(data: bytes, out: list[bytes]) -> int:
    """The read's leading run of whole chunks with bare sizes (a burst of events, each
    flushed as a chunk of its own) into ``out``, taken as :meth:`whole_chunk` takes
    one; where the rest begins, for the general reading to go on from."""
    position, end, known = 0, len(data), _KNOWN_SIZES
    while position < end:
        line_end = data.find(b"\r\n", position, position + 22)
        if line_end < 0:
            break
        field = data[position:line_end]
        size = known.get(field) or _chunk_size(field)
        after = line_end + 2 + size if size else 0
        if not size or data[after:after + 2] != b"\r\n":
            break
        out.append(data[line_end + 2:after])
        position = after + 2
    return position


def _chunk_size(field: bytes) -> int:
    """The size a bare hex chunk-size field gives (0 if it is not one), remembered."""
    if field == b"0":  # the last chunk's: every body has one
        return 0
    if len(field) > 20 or _HEX_DIGITS.fullmatch(field) is None:
        return 0
    size = int(field, 16)
    if size and len(_KNOWN_SIZES) < _MAX_KNOWN_SIZES:
        _KNOWN_SIZES[field] = size
    return size


class LengthDecoder:
    """A body of a declared Content-Length."""

    __slots__ = ("_remaining", "done", "trailing")

    def __init__(self, length: int) -> None:
        self._remaining = length
        self.done = length == 0
        self.trailing = b""

    def feed(self, data: bytes) -> list[bytes]:
        if self.done:
            self.trailing += data
            return []
        take = data[:self._remaining]
        self._remaining -= len(take)
        if not self._remaining:
            self.done = True
            self.trailing = data[len(take):]
        return [take] if take else []


class UntilCloseDecoder:
    """A body delimited by the end of the connection (neither length nor chunking)."""

    __slots__ = ("done", "trailing")

    def __init__(self) -> None:
        self.done = False
        self.trailing = b""

    def feed(self, data: bytes) -> list[bytes]:
        return [data] if data else []


BodyDecoder = ChunkedDecoder | LengthDecoder | UntilCloseDecoder

_SIZE, _DATA, _DATA_END, _TRAILER = object(), object(), object(), object()
