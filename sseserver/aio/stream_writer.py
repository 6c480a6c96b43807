"""The body of a streamed response, written as it is produced.

:meth:`HTTPConnection.start_stream <sseserver.aio.http_server.HTTPConnection.start_stream>`
sends the head and returns a :class:`StreamWriter`; each write goes to the socket at
once, and the connection's write-buffer cap holds while the client reads slowly. A
writer may begin held (:meth:`StreamWriter.held`): its head and what is written until
:meth:`StreamWriter.release` go out in one write then.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sseserver.aio.flow import FlowControl

if TYPE_CHECKING:
    from sseserver.aio.http_server import HTTPConnection

_LAST_CHUNK = b"0\r\n\r\n"


class _Held:
    """Stands in for a held writer's transport: keeps what is written, in order."""

    __slots__ = ("parts",)

    def __init__(self, first: bytes) -> None:
        self.parts = [first]

    def write(self, data: bytes) -> None:
        self.parts.append(data)


class StreamWriter:
    """Writes the body of a streamed response: hand-framed HTTP chunks for HTTP/1.1.

    A chunk is one bytes format (h11 framed one in ~1.8 µs, the largest step of a
    frame write).
    """

    __slots__ = ("_chunked", "_conn", "_flow", "_sends_body", "_socket", "_transport",
                 "bytes_sent", "closed")

    def __init__(self, conn: HTTPConnection, transport: asyncio.Transport, *,
                 chunked: bool = True, sends_body: bool = True) -> None:
        self._conn = conn
        self._flow = conn.flow  # held here: a write need not touch the connection
        self._socket = self._transport = transport
        self._chunked = chunked and sends_body
        self._sends_body = sends_body
        self.closed = False
        self.bytes_sent = 0

    @property
    def flow(self) -> FlowControl:
        return self._flow

    def held(self, head: bytes) -> None:
        """Keep ``head`` and every write after it until :meth:`release`, which sends
        them in one write (a response's head and its first frames: one segment, one
        system call). Writes read no flag for it: the transport they write to is the
        holder until then."""
        self._transport = _Held(head)  # type: ignore[assignment]

    def release(self) -> None:
        """Send what is held, in one write, and write straight through from now on."""
        holder = self._transport
        if type(holder) is _Held:
            self._transport = self._socket
            self._socket.write(b"".join(holder.parts))
            if self._flow.paused:  # as a write checks
                self._conn.check_write_buffer()

    def frame(self, data: bytes) -> bytes:
        """``data`` as the body carries it (one chunk; nothing for a HEAD), counted as
        sent: for a write the caller makes itself (the head's)."""
        self.bytes_sent += len(data)
        if self._chunked:
            return b"%x\r\n%b\r\n" % (len(data), data)
        return data if self._sends_body else b""

    def write(self, data: bytes) -> None:
        """Send ``data`` as one chunk now (never held back to batch it), or with the
        head while the writer is held."""
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
        self.release()  # a head still held goes with the last chunk: one write
        self._conn.end_stream()

    def abort(self) -> None:
        """Cut the connection without a last chunk: the client sees a truncated body."""
        self.closed = True
        self._conn.abort()
