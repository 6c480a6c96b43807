"""The upstream connection reads a head as the parser does, whatever its reads: a head
whole in the response's first read is taken without a parser (first_final_head), any
other by a parser made for it, on a fresh connection and on a recycled one alike."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.aio.upstream import State, Timeouts, UpstreamConnection
from sseserver.core.http_client import ResponseHead
from sseserver.errors import UpstreamError
from tests.aio.test_upstream import FakeTransport, send
from tests.core.test_http_client import (
    MUTATIONS,
    Verdict,
    final_status,
    interim_status,
    ours_response,
    response_heads,
    split,
)


class HeadRecorder:
    def __init__(self) -> None:
        self.head: ResponseHead | None = None
        self.error: UpstreamError | None = None

    def on_head(self, head: ResponseHead) -> None:
        self.head = head

    def on_head_error(self, error: UpstreamError) -> None:
        self.error = error


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def fresh(loop: asyncio.AbstractEventLoop) -> UpstreamConnection:
    conn = UpstreamConnection(Timeouts(), loop)
    conn.connection_made(cast(asyncio.BaseTransport, FakeTransport()))
    return conn


def recycled(loop: asyncio.AbstractEventLoop, first: bytes) -> UpstreamConnection:
    """A connection that served a response read as ``first`` comes (whole or in pieces)."""
    conn = fresh(loop)
    send(conn)
    for piece in split(first, [len(first) // 2] if b"x-split" in first else []):
        conn.data_received(piece)
    assert conn.state is State.DONE and conn.recycle()
    return conn


def connection_verdict(conn: UpstreamConnection, data: bytes, cuts: list[int]) -> Verdict:
    """The head ``conn`` reads from ``data`` in the reads ``cuts`` make (its fields, as
    the parser's verdict has them, without the bytes after it), 'incomplete' or 'error'."""
    send(conn)
    listener = HeadRecorder()
    conn.await_head(listener)
    for piece in split(data, cuts):
        if conn.state is not State.AWAITING_HEAD:
            break
        conn.data_received(piece)
    if listener.error is not None:
        assert "invalid HTTP" in str(listener.error) and conn.state is State.FAILED
        return "error"
    head = listener.head
    if head is None:
        return "incomplete"
    assert conn.response_head is head and head.headers == dict(head.fields)
    return head.status, head.http_version, head.reason, head.fields, b""


EARLIER = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",  # whole: no parser made
           b"HTTP/1.1 204 No Content\r\nx-split: 1\r\n\r\n",  # in two reads: a parser
           b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]


@settings(max_examples=300, deadline=None)
@given(interim=st.lists(response_heads(interim_status), max_size=1),
       final=response_heads(final_status), body=st.binary(max_size=20),
       mutations=st.lists(st.tuples(st.integers(0, 300), st.sampled_from(MUTATIONS),
                                    st.integers(0, 2)), max_size=2),
       cuts=st.lists(st.integers(0, 300), max_size=3), earlier=st.sampled_from(EARLIER))
def test_a_connection_reads_a_head_as_the_parser_whatever_the_reads(
        loop: asyncio.AbstractEventLoop, interim: list[str], final: str, body: bytes,
        mutations: list[tuple[int, bytes, int]], cuts: list[int], earlier: bytes) -> None:
    data = "".join([*interim, final]).encode("latin-1") + body
    for position, insert, remove in mutations:
        at = min(position, len(data))
        data = data[:at] + insert + data[at + remove:]
    if not data:
        return
    expected = ours_response(data, cuts)
    if isinstance(expected, tuple):
        expected = (*expected[:4], b"")
    assert connection_verdict(fresh(loop), data, cuts) == expected
    assert connection_verdict(recycled(loop, earlier), data, cuts) == expected


class BodyRecorder(HeadRecorder):
    """Takes the body from the head on, as the relay does (stream() in on_head)."""

    def __init__(self, conn: UpstreamConnection) -> None:
        super().__init__()
        self.conn = conn
        self.body = b""
        self.ended = False
        self.progress = 0

    def on_head(self, head: ResponseHead) -> None:
        super().on_head(head)
        self.conn.stream(self)

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_body_end(self) -> None:
        self.ended = True

    def on_body_error(self, error: UpstreamError) -> None:
        self.error = error


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A valid response (its bytes) and the body it carries: chunked, of a length, or
    with no body (204, 304, Content-Length: 0)."""
    payloads = draw(st.lists(st.binary(min_size=1, max_size=12), max_size=3))
    framing = draw(st.sampled_from(["chunked", "length", "none"]))
    status = draw(st.sampled_from([200, 200, 429])) if framing != "none" else \
        draw(st.sampled_from([204, 304, 200]))
    head = f"HTTP/1.1 {status} X\r\ncontent-type: text/event-stream\r\n"
    if framing == "chunked":
        return ((head + "transfer-encoding: chunked\r\n\r\n").encode() + b"".join(
            b"%x\r\n%b\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n",
            b"".join(payloads))
    body = b"".join(payloads) if framing == "length" else b""
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body, body


@settings(max_examples=300, deadline=None)
@given(response=responses(), cuts=st.lists(st.integers(0, 200), max_size=4),
       earlier=st.sampled_from(EARLIER))
def test_a_body_comes_whole_and_ends_once_whatever_the_reads(
        loop: asyncio.AbstractEventLoop, response: tuple[bytes, bytes], cuts: list[int],
        earlier: bytes) -> None:
    """Whether the head comes alone in its read (nothing is decoded then unless the
    body ended with it), with body bytes behind it, or in pieces: the body reaches the
    sink whole, its end once, and the connection is ready for the next request."""
    data, body = response
    for conn in (fresh(loop), recycled(loop, earlier)):
        send(conn)
        recorder = BodyRecorder(conn)
        conn.await_head(recorder)
        for piece in split(data, cuts):
            conn.data_received(piece)
        assert (recorder.body, recorder.ended, recorder.error) == (body, True, None)
        assert conn.state is State.DONE and conn.recycle()
