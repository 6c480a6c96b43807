"""The body of a streamed response, written as it is produced.

:meth:`HTTPConnection.start_stream <sseserver.aio.http_server.HTTPConnection.start_stream>`
sends the head and returns a :class:`StreamWriter`; each write goes to the socket at
once, and the connection's write-buffer cap holds while the client reads slowly.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sseserver.aio.flow import FlowControl

if TYPE_CHECKING:
    from sseserver.aio.http_server import HTTPConnection

_LAST_CHUNK = b"0\r\n\r\n"


class StreamWriter:
    """Writes the body of a streamed response: hand-framed HTTP chunks for HTTP/1.1.

    A chunk is one bytes format (h11 framed one in ~1.8 µs, the largest step of a
    frame write).
    """

    __slots__ = ("_chunked", "_conn", "_flow", "_sends_body", "_transport", "bytes_sent",
                 "closed")

    def __init__(self, conn: HTTPConnection, transport: asyncio.Transport, *,
                 chunked: bool = True, sends_body: bool = True) -> None:
        self._conn = conn
        self._flow = conn.flow  # held here: a write need not touch the connection
        self._transport = transport
        self._chunked = chunked and sends_body
        self._sends_body = sends_body
        self.closed = False
        self.bytes_sent = 0

    @property
    def flow(self) -> FlowControl:
        return self._flow

    def frame(self, data: bytes) -> bytes:
        """``data`` as the body carries it (one chunk; nothing for a HEAD), counted as
        sent: for a write the caller makes itself (the head's)."""
        self.bytes_sent += len(data)
        if self._chunked:
            return b"%x\r\n%b\r\n" % (len(data), data)
        return data if self._sends_body else b""

    def write(self, data: bytes) -> None:
        """Send ``data`` as one chunk now (never held back to batch it)."""
        if self.closed or not data:
            return
        size = len(data)
        self.bytes_sent += size
        if self._chunked:
            self._transport.write(b"%x\r\n%b\r\n" % (size, data))
        elif self._sends_body:
            self._transport.write(data)
        else:
            return
        if self._flow.paused:
            self._conn.check_write_buffer()

    def close(self, last: bytes = b"") -> None:
        """Send ``last`` and end the body in one write, then complete the response."""
        if self.closed:
            return
        self.closed = True
        self.bytes_sent += len(last)
        if self._chunked:
            self._transport.write(b"%x\r\n%b\r\n%b" % (len(last), last, _LAST_CHUNK)
                                  if last else _LAST_CHUNK)
        elif last and self._sends_body:
            self._transport.write(last)
        self._conn.end_stream()

    def abort(self) -> None:
        """Cut the connection without a last chunk: the client sees a truncated body."""
        self.closed = True
        self._conn.abort()
