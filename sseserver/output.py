"""Where a relay's frames go: straight to one client, or into a stream log.

:class:`DirectOutput` writes to the one connection that asked, and passes that
connection's backpressure to the upstream socket (true end-to-end flow control). The
log-backed output of resumable streams lives in :mod:`sseserver.fanout`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sseserver.aio.http_server import HTTPConnection, StreamWriter

# Response headers of every stream (DESIGN.md §2), besides the content type.
STREAM_HEADERS = (("cache-control", "no-cache, no-store"), ("x-accel-buffering", "no"))


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

    def write(self, frames: list[bytes]) -> None:
        """Send frames, each of which carries one event id."""
        ...

    def write_frame(self, frame: bytes) -> None:
        """:meth:`write` for one frame: the per-token write. A caller may keep this
        callable from :meth:`open` on; before, it may differ."""
        ...

    def heartbeat(self, frame: bytes) -> None: ...

    def finish(self, frames: list[bytes]) -> None:
        """Send the last frames, past any bound, and end the stream."""
        ...

    def respond_error(self, status: int, headers: list[tuple[str, str]],
                      payload: dict[str, Any]) -> None: ...

    def attach_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None: ...

    def detach_flow(self) -> None: ...


def stream_head(stream_id: str, content_type: str, extra: list[tuple[str, str]]
                ) -> list[tuple[str, str]]:
    return [("content-type", content_type), *STREAM_HEADERS, ("x-stream-id", stream_id),
            *extra]


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
        self._writer = self._conn.start_stream(
            200, stream_head(stream_id, content_type, self._extra_headers))
        # with the head, not with the first event: a client cut before its first token
        # has been told when to come back (the transport sends both in one write)
        self._writer.write(preamble)
        self.write_frame = self._writer.write  # a token's frame: one call, one chunk

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
                      payload: dict[str, Any]) -> None:
        self._conn.respond_json(status, payload, [*headers, *self._extra_headers])

    def attach_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._conn.flow.attach(pause, resume)

    def detach_flow(self) -> None:
        self._conn.flow.detach()


def _unsent(frame: bytes) -> None:
    """Where frames go before the response opened: nowhere (nothing may precede the head)."""
