"""Newline-delimited JSON, sans-IO: an incremental line reader (Ollama's stream framing,
reference/gemini-and-ollama-stream.md, Part 2).

Each line is one JSON value, ended by LF (a CR before it is dropped: some servers end
lines with CRLF). The reader hands back the text of each whole line and keeps the
partial last one for the next read; it never parses the JSON itself (the adapter does,
by its documented shape).

Its interface is the SSE parser's shortcut pair (:meth:`feed_data_line`,
:meth:`feed_data_lines`), a line standing for an event's data, so the pump reads
either framing through the same calls: with this reader every read takes the
shortcuts, and the SSE parser's general path is never asked for.
"""

from __future__ import annotations

from sseserver.core.sse import MAX_BYTES_WITHOUT_EVENT, MAX_LINE_BYTES, ServerSentEvent
from sseserver.errors import EventTooLarge, NoEvents


class NDJSONReader:
    """Whole lines out of reads cut anywhere, each bounded.

    A line longer than ``max_line_bytes`` raises :class:`EventTooLarge` (checked on
    the unfinished line after each read, so memory stays bounded too); blank lines
    (whitespace only) are skipped, and more than ``max_bytes_without_event`` of them
    between two lines of JSON raises :class:`NoEvents`. The bounds are the SSE
    parser's, for the same reasons (core/sse.py).
    """

    __slots__ = ("_buffer", "_max_line", "_max_without_event", "_without_event")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES,
                 max_bytes_without_event: int = MAX_BYTES_WITHOUT_EVENT) -> None:
        self._max_line = max_line_bytes
        self._max_without_event = max_bytes_without_event
        self._buffer = bytearray()  # the unfinished last line
        self._without_event = 0  # bytes of blank lines since the last line of JSON

    def __repr__(self) -> str:
        return f"<NDJSONReader buffered={len(self._buffer)}>"

    def feed_data_line(self, chunk: bytes) -> str | None:
        """If ``chunk`` is exactly one whole line of JSON with nothing pending before it
        (the per-token read), its text; otherwise None, and nothing is taken."""
        if not self._buffer and chunk[:1] == b"{" and \
                chunk.find(b"\n") == len(chunk) - 1 and 13 not in chunk:
            self._without_event = 0
            return _decode(chunk[:-1])
        return None

    def feed_data_lines(self, chunk: bytes) -> list[str]:
        """The text of every line ``chunk`` completes (none, for a read inside a line).
        Never None: every read of this framing is taken here."""
        if self._buffer:
            if 10 not in chunk:  # a long line in small reads: no quadratic copying
                self._buffer += chunk
                self._check_line_length()
                return []
            chunk = bytes(self._buffer) + chunk
        lines = chunk.split(b"\n")
        self._buffer = bytearray(lines.pop())
        self._check_line_length()
        texts: list[str] = []
        for line in lines:
            if line[:1] == b"{" and line[-1:] != b"\r":
                texts.append(_decode(line))
                self._without_event = 0
            elif line.strip():
                texts.append(_decode(line.strip()))
                self._without_event = 0
            else:
                self._without_event += len(line) + 1
        if self._without_event > self._max_without_event:
            self._without_event = 0
            raise NoEvents(f"more than {self._max_without_event} bytes without a JSON line")
        return texts

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The general reading, for a caller that does not take the shortcuts: each
        line as the data of one unnamed event."""
        return [ServerSentEvent("message", text) for text in self.feed_data_lines(chunk)]

    def end(self) -> list[ServerSentEvent]:
        """The body's HTTP framing ended it: a last line without its LF is whole."""
        last = self.close()
        return [ServerSentEvent("message", last)] if last is not None else []

    def close(self) -> str | None:
        """End of the body: the text of a last line that had no LF, if any."""
        rest, self._buffer = bytes(self._buffer).strip(), bytearray()
        return _decode(rest) if rest else None

    def _check_line_length(self) -> None:
        if len(self._buffer) > self._max_line:
            self._buffer = bytearray()
            raise EventTooLarge(f"JSON line longer than {self._max_line} bytes")


def _decode(line: bytes) -> str:
    try:
        return line.decode()
    except UnicodeDecodeError:  # invalid sequences become U+FFFD, as in the SSE parser
        return line.decode("utf-8", "replace")
