"""StreamWriter's framing, write by write (each write is one send on the socket)."""

from __future__ import annotations

import asyncio

from sseserver.aio.http_server import HTTPConnection, StreamWriter
from sseserver.config import LimitsSettings


class RecordingTransport:
    """Keeps each write apart, which a socket would not show."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


def writer(chunked: bool = True, sends_body: bool = True
           ) -> tuple[StreamWriter, RecordingTransport, HTTPConnection]:
    transport = RecordingTransport()
    conn = HTTPConnection(lambda request, c: None, LimitsSettings(header_timeout=0),
                          lambda c, status, message: None, asyncio.new_event_loop())
    conn._transport = transport  # type: ignore[assignment]
    conn._close_after_response = True  # the cycle ends by closing: no reader needed
    conn.stream = stream = StreamWriter(conn, transport,  # type: ignore[arg-type]
                                        chunked=chunked, sends_body=sends_body)
    return stream, transport, conn


def test_each_write_is_one_chunk_and_the_end_travels_with_the_last_frames() -> None:
    stream, transport, conn = writer()
    stream.write(b"data: a\n\n")
    stream.close(b"data: [DONE]\n\n")
    assert transport.writes == [b"9\r\ndata: a\n\n\r\n",
                                b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"]
    assert stream.bytes_sent == 9 + 14
    assert conn.stream is None and transport.closed  # the response is complete
    stream.close(b"late")  # a second close sends nothing
    assert len(transport.writes) == 2


def test_close_without_last_frames_sends_the_last_chunk_alone() -> None:
    stream, transport, _ = writer()
    stream.close()
    assert transport.writes == [b"0\r\n\r\n"]


def test_raw_body_for_http10_and_nothing_for_head() -> None:
    raw, raw_transport, _ = writer(chunked=False)
    raw.write(b"data: a\n\n")
    raw.close(b"data: [DONE]\n\n")
    assert raw_transport.writes == [b"data: a\n\n", b"data: [DONE]\n\n"]
    head, head_transport, conn = writer(sends_body=False)
    head.write(b"data: a\n\n")
    head.close(b"data: [DONE]\n\n")
    assert head_transport.writes == [] and conn.stream is None


def started(http11: bool = True, head_only: bool = False
            ) -> tuple[HTTPConnection, RecordingTransport]:
    """A connection whose request is read, ready to answer it."""
    transport = RecordingTransport()
    conn = HTTPConnection(lambda request, c: None, LimitsSettings(header_timeout=0),
                          lambda c, status, message: None, asyncio.new_event_loop())
    conn._transport = transport  # type: ignore[assignment]
    conn._http11, conn._head_only, conn._keep_alive = http11, head_only, False
    return conn, transport


def test_the_first_bytes_of_a_stream_go_in_the_heads_write() -> None:
    """The preamble travels with the head: one write (one segment, one system call),
    the bytes a head and then a write of the preamble sent."""
    for http11, head_only in [(True, False), (False, False), (True, True)]:
        conn, transport = started(http11, head_only)
        stream = conn.start_stream(200, [("content-type", "text/event-stream")],
                                   b"retry: 3000\n")
        stream.write(b"data: a\n\n")
        apart, apart_transport = started(http11, head_only)
        apart_stream = apart.start_stream(200, [("content-type", "text/event-stream")])
        apart_stream.write(b"retry: 3000\n")
        apart_stream.write(b"data: a\n\n")
        # a HEAD's body is never sent: its head is its one write either way
        assert len(transport.writes) == (1 if head_only else 2)
        assert len(apart_transport.writes) == (1 if head_only else 3)
        assert b"".join(transport.writes) == b"".join(apart_transport.writes)
        assert stream.bytes_sent == apart_stream.bytes_sent == 12 + 9


def test_a_stream_with_no_first_bytes_sends_its_head_at_once() -> None:
    conn, transport = started()
    conn.start_stream(200, [("content-type", "text/event-stream")])
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n")


FIXED = (("content-type", "text/event-stream"),)


def test_a_held_stream_sends_its_head_and_what_followed_in_one_write_at_release() -> None:
    """The same bytes as a head sent at once and each write after it, in one write:
    chunked, HTTP/1.0 (raw body) and HEAD (the head alone)."""
    for http11, head_only in [(True, False), (False, False), (True, True)]:
        conn, transport = started(http11, head_only)
        stream = conn.start_spliced_stream(200, FIXED, ("x-stream-id", "S"), [],
                                           b"retry: 3000\n", held=True)
        stream.write(b"data: a\n\n")
        stream.write(b"data: b\n\n")
        assert transport.writes == []
        stream.release()
        stream.release()  # nothing more is held: nothing more is sent
        stream.write(b"data: c\n\n")
        apart, apart_transport = started(http11, head_only)
        apart_stream = apart.start_spliced_stream(200, FIXED, ("x-stream-id", "S"), [],
                                                  b"retry: 3000\n")
        for frame in (b"data: a\n\n", b"data: b\n\n", b"data: c\n\n"):
            apart_stream.write(frame)
        assert len(transport.writes) == (1 if head_only else 2)
        assert _dateless([b"".join(transport.writes)]) == \
            _dateless([b"".join(apart_transport.writes)])
        assert stream.bytes_sent == apart_stream.bytes_sent


def test_a_held_stream_closed_sends_head_frames_and_end_in_one_write() -> None:
    conn, transport = started()
    stream = conn.start_spliced_stream(200, FIXED, ("x-stream-id", "S"), [], b"", held=True)
    stream.write(b"data: a\n\n")
    stream.close(b"data: [DONE]\n\n")
    (write,) = transport.writes
    assert write.startswith(b"HTTP/1.1 200 OK\r\n")
    assert write.endswith(b"9\r\ndata: a\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
    assert conn.stream is None and transport.closed


def test_a_release_checks_the_write_buffer_as_a_write_does() -> None:
    """A client that does not read, its buffer past the cap after the release's
    write, is evicted then, as after any write."""
    conn, transport = started()
    stream = conn.start_spliced_stream(200, FIXED, ("x-stream-id", "S"), [], b"", held=True)
    aborted: list[bool] = []
    transport.abort = lambda: aborted.append(True)  # type: ignore[attr-defined]
    conn.flow.pause()
    stream.write(b"data: a\n\n")
    assert aborted == []
    transport.get_write_buffer_size = lambda: 1 << 40  # type: ignore[method-assign]
    stream.release()
    assert aborted == [True] and len(transport.writes) == 1


def _dateless(writes: list[bytes]) -> list[bytes]:
    return [b"\r\n".join(line for line in write.split(b"\r\n")
                         if not line.startswith(b"date: ")) for write in writes]
