"""Where a relay's frames go: straight to one client, into a stream log, or into one
whole answer.

:class:`DirectOutput` writes to the one connection that asked, and passes that
connection's backpressure to the upstream socket (true end-to-end flow control);
:class:`ShapedOutput` is the same with errors in another API's shape, and
:class:`CollectingOutput` answers a non-streaming request of the compatible endpoints
once the stream is over. The log-backed output of resumable streams lives in
:mod:`sseserver.fanout`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from sseserver.aio.http_server import HTTPConnection, StreamWriter
from sseserver.failures import collected_headers

# Response headers of every stream (DESIGN.md §2), besides the content type.
STREAM_HEADERS = (("cache-control", "no-cache, no-store"), ("x-accel-buffering", "no"))
# Content types are the output formats' few; the bound only keeps the table a table.
_MAX_FIXED_HEADS = 64


class Output(Protocol):
    streams_at_once: bool  # True: the response is open before the upstream answers
    bytes_sent: int

    def bind(self, on_gone: Callable[[], None], on_full: Callable[[], None]) -> None:
        """``on_gone`` is called when no reader is left and generating should stop;
        ``on_full`` after a write that took the stream past its memory bound."""
        ...

    def unbind(self) -> None: ...

    def open(self, stream_id: str, content_type: str, preamble: bytes) -> None:
        """Start the response (or the log); every response body starts with
        ``preamble`` (the formatter's, e.g. SSE's ``retry:`` line)."""
        ...

    def open_with(self, stream_id: str, content_type: str, preamble: bytes,
                  first_read: Callable[[], bool]) -> None:
        """:meth:`open`, then ``first_read()`` (the body's first read, which may
        write): a client gets the head and those frames in one write. ``first_read``
        returns True when the provider finished in that read: then the stream's
        :meth:`finish` follows at once, and the head may wait to go out with it."""
        ...

    def write(self, frames: list[bytes]) -> None:
        """Send frames, each of which carries one event id."""
        ...

    def write_frame(self, frame: bytes) -> None:
        """:meth:`write` for one frame: the per-token write. The pump keeps this
        callable from the commit on (after :meth:`open`); before, it may differ."""
        ...

    def heartbeat(self, frame: bytes) -> None: ...

    def finish(self, frames: list[bytes]) -> None:
        """Send the last frames, past any bound, and end the stream."""
        ...

    def respond_error(self, status: int, headers: list[tuple[str, str]],
                      payload: dict[str, Any], upstream_status: int | None = None) -> None: ...

    def attach_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None: ...

    def detach_flow(self) -> None: ...


def stream_head(stream_id: str, content_type: str, extra: list[tuple[str, str]]
                ) -> list[tuple[str, str]]:
    return [*fixed_stream_head(content_type), ("x-stream-id", stream_id), *extra]


# A stream head's lines before its id, by content type (one per output format).
_fixed_heads: dict[str, tuple[tuple[str, str], ...]] = {}


def fixed_stream_head(content_type: str) -> tuple[tuple[str, str], ...]:
    """The lines of a stream's head before its id: the same for every stream of a
    format, one tuple (the head's template is found by it)."""
    fixed = _fixed_heads.get(content_type)
    if fixed is None:
        fixed = (("content-type", content_type), *STREAM_HEADERS)
        if len(_fixed_heads) < _MAX_FIXED_HEADS:
            _fixed_heads[content_type] = fixed
    return fixed


class DirectOutput:
    """One client on one connection; its write buffer pauses the upstream."""

    streams_at_once = False
    __slots__ = ("_conn", "_extra_headers", "_writer", "write_frame")

    def __init__(self, conn: HTTPConnection, extra_headers: list[tuple[str, str]]) -> None:
        self._conn = conn
        self._extra_headers = extra_headers
        self._writer: StreamWriter | None = None
        self.write_frame: Callable[[bytes], None] = _unsent  # until the response opens

    @property
    def bytes_sent(self) -> int:
        return self._writer.bytes_sent if self._writer is not None else 0

    def bind(self, on_gone: Callable[[], None], on_full: Callable[[], None]) -> None:
        self._conn.on_lost = on_gone  # never full: the connection's buffer pauses us

    def unbind(self) -> None:
        self._conn.on_lost = None

    def open(self, stream_id: str, content_type: str, preamble: bytes) -> None:
        self._start(stream_id, content_type, preamble, held=False)

    def open_with(self, stream_id: str, content_type: str, preamble: bytes,
                  first_read: Callable[[], bool]) -> None:
        writer = self._start(stream_id, content_type, preamble, held=True)
        finished = False
        try:
            finished = first_read()
        finally:
            if not finished:  # (else finish() releases it, with the end)
                writer.release()

    def _start(self, stream_id: str, content_type: str, preamble: bytes, held: bool
               ) -> StreamWriter:
        # with the head, not with the first event: a client cut before its first token
        # has been told when to come back (one write sends both)
        writer = self._writer = self._conn.start_spliced_stream(
            200, fixed_stream_head(content_type), ("x-stream-id", stream_id),
            self._extra_headers, preamble, held=held)
        self.write_frame = writer.write  # a token's frame: one call, one chunk
        return writer

    def write(self, frames: list[bytes]) -> None:
        if self._writer is not None:
            self._writer.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def heartbeat(self, frame: bytes) -> None:
        if self._writer is not None:
            self._writer.write(frame)

    def finish(self, frames: list[bytes]) -> None:
        if self._writer is not None:
            self._writer.close(b"".join(frames))  # the end travels with the last chunk

    def respond_error(self, status: int, headers: list[tuple[str, str]],
                      payload: dict[str, Any], upstream_status: int | None = None) -> None:
        self._conn.respond_json(status, payload, [*headers, *self._extra_headers])

    def attach_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._conn.flow.attach(pause, resume)

    def detach_flow(self) -> None:
        self._conn.flow.detach()


def _unsent(frame: bytes) -> None:
    """Where frames go before the response opened: nowhere (nothing may precede the head)."""


# A failure's status (and the provider's, when it answered one) and our JSON error, to
# the status and error body of the API a compatible endpoint speaks.
ErrorShape = Callable[[int, int | None, dict[str, Any]], tuple[int, dict[str, Any]]]


class ShapedOutput(DirectOutput):
    """:class:`DirectOutput` whose errors before the stream take another API's shape
    (the compatible endpoints: each SDK must raise its own exception class)."""

    __slots__ = ("_shape",)

    def __init__(self, conn: HTTPConnection, extra_headers: list[tuple[str, str]],
                 shape: ErrorShape) -> None:
        super().__init__(conn, extra_headers)
        self._shape = shape

    def respond_error(self, status: int, headers: list[tuple[str, str]],
                      payload: dict[str, Any], upstream_status: int | None = None) -> None:
        status, payload = self._shape(status, upstream_status, payload)
        super().respond_error(status, headers, payload)


class Collected(Protocol):
    """What :class:`CollectingOutput` answers with: an assembler (a formatter that
    keeps the answer instead of framing it)."""

    size: int

    def response(self) -> tuple[int, dict[str, Any]]: ...


class CollectingOutput:
    """A non-streaming answer: nothing is sent until the relay ends the stream, then
    one JSON response, the assembled answer or the error. The client's connection is
    still watched: a client that leaves cancels the generation, as with a stream."""

    streams_at_once = False
    __slots__ = ("_assembled", "_conn", "_max_chars", "_on_full", "_shape", "_stream_id",
                 "bytes_sent")

    def __init__(self, conn: HTTPConnection, assembled: Collected, max_chars: int,
                 shape: ErrorShape) -> None:
        self._conn = conn
        self._assembled = assembled
        self._max_chars = max_chars
        self._shape = shape
        self._on_full: Callable[[], None] | None = None
        self._stream_id = ""
        self.bytes_sent = 0

    def __repr__(self) -> str:
        return f"<CollectingOutput {self._stream_id} {self._assembled!r}>"

    def bind(self, on_gone: Callable[[], None], on_full: Callable[[], None]) -> None:
        self._conn.on_lost = on_gone
        self._on_full = on_full

    def unbind(self) -> None:
        self._conn.on_lost = None
        self._on_full = None

    def open(self, stream_id: str, content_type: str, preamble: bytes) -> None:
        self._stream_id = stream_id

    def open_with(self, stream_id: str, content_type: str, preamble: bytes,
                  first_read: Callable[[], bool]) -> None:
        self._stream_id = stream_id
        first_read()

    def write(self, frames: list[bytes]) -> None:
        if self._assembled.size > self._max_chars and self._on_full is not None:
            on_full, self._on_full = self._on_full, None
            on_full()  # the answer passed its bound: the relay ends it with an error

    def write_frame(self, frame: bytes) -> None:
        self.write([frame])

    def heartbeat(self, frame: bytes) -> None:
        pass  # a JSON answer has no place for one

    def finish(self, frames: list[bytes]) -> None:
        status, payload = self._assembled.response()
        self._respond(status, collected_headers(status), payload)

    def respond_error(self, status: int, headers: list[tuple[str, str]],
                      payload: dict[str, Any], upstream_status: int | None = None) -> None:
        status, payload = self._shape(status, upstream_status, payload)
        self._respond(status, headers, payload)

    def _respond(self, status: int, headers: list[tuple[str, str]],
                 payload: dict[str, Any]) -> None:
        ids = [("x-stream-id", self._stream_id)] if self._stream_id else []
        body = orjson.dumps(payload)
        self.bytes_sent = len(body)
        self._conn.respond(status, [("content-type", "application/json"), *ids, *headers],
                           body)

    def attach_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        pass  # nothing is written while collecting; the size bound stands in for it

    def detach_flow(self) -> None:
        pass
