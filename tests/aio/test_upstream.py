"""The upstream client against scripted loopback servers (timeouts, closes, flow), and
its protocol alone on a fake transport (heads, keep-alive, invalid HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import cast

import pytest

from sseserver.aio.connect import open_upstream
from sseserver.aio.upstream import IDLE_CHECKS, State, Timeouts, UpstreamConnection
from sseserver.aio.wheel import wheel_for
from sseserver.core.http_client import ResponseHead
from sseserver.errors import (
    LocalProtocolError,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from tests.conftest import loopback_server, run_async

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class Sink:
    """Counts bytes as progress, as a sink of a plain body does."""

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.progress = 0
        self.done: asyncio.Future[UpstreamError | None] = \
            asyncio.get_running_loop().create_future()

    def on_body(self, data: bytes) -> None:
        self.body.append(data)
        self.progress += len(data)

    def on_body_end(self) -> None:
        self.done.set_result(None)

    def on_body_error(self, error: UpstreamError) -> None:
        self.done.set_result(error)


def run(script: Script, test: Callable[[str], Awaitable[None]]) -> None:
    """``test`` against a loopback server that reads a request head, then plays
    ``script``."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await script(reader, writer)

    async def main() -> None:
        async with loopback_server(handle) as port:
            await test(f"http://127.0.0.1:{port}/v1/x")

    run_async(main)


def test_streams_the_body_to_the_sink() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(b"data: 1\n\n") + chunk(b"data: 2\n\n") + b"0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [("content-type", "application/json")], b"{}",
                                   Timeouts())
        head = await conn.head()
        assert head.status == 200
        assert head.headers["content-type"] == "text/event-stream"
        sink = Sink()
        conn.stream(sink)
        assert await sink.done is None
        assert b"".join(sink.body) == b"data: 1\n\ndata: 2\n\n"
        assert "state=done" in repr(conn)
        conn.close()

    run(script, test)


def test_error_body_is_read_whole() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = b'{"error": {"message": "nope"}}'
        writer.write(b"HTTP/1.1 429 Too Many\r\nRetry-After: 2\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(body), body))
        await writer.drain()

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts())
        head = await conn.head()
        assert (head.status, head.headers["retry-after"]) == (429, "2")
        assert await conn.read_body() == b'{"error": {"message": "nope"}}'

    run(script, test)


def test_first_byte_timeout() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(first_byte=0.2))
        started = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamTimeout, match="first byte"):
            await conn.head()
        assert 0.15 < asyncio.get_running_loop().time() - started < 1.5

    run(script, test)


def test_idle_timeout_between_chunks() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(b"data: 1\n\n"))
        await writer.drain()
        await asyncio.sleep(5)

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(idle=0.2))
        await conn.head()
        sink = Sink()
        conn.stream(sink)
        error = await sink.done
        assert isinstance(error, UpstreamTimeout) and "next event" in str(error)
        assert sink.body == [b"data: 1\n\n"]

    run(script, test)


def test_each_limit_applies_in_its_own_phase() -> None:
    """One check serves the first-byte and idle limits both, so it may come early: a
    head later than the idle limit (but within the first-byte one) is waited for, and
    chunks further apart than the first-byte limit (but within the idle one) flow."""
    async def slow_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.5)
        writer.write(HEAD + chunk(b"data: 1\n\n"))
        await writer.drain()
        await asyncio.sleep(5)

    async def idle_after_a_slow_head(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(first_byte=3, idle=0.2))
        await conn.head()
        started = asyncio.get_running_loop().time()
        sink = Sink()
        conn.stream(sink)
        error = await sink.done
        assert isinstance(error, UpstreamTimeout) and "next event" in str(error)
        assert 0.15 < asyncio.get_running_loop().time() - started < 1.0

    run(slow_head, idle_after_a_slow_head)

    async def slow_chunks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD)
        for n in range(3):
            await asyncio.sleep(0.35)
            writer.write(chunk(b"data: %d\n\n" % n))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def flows(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(first_byte=0.2, idle=1))
        await conn.head()
        sink = Sink()
        conn.stream(sink)
        assert await sink.done is None
        assert b"".join(sink.body) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"

    run(slow_chunks, flows)


def test_total_timeout_even_while_data_flows() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD)
        for _ in range(100):
            writer.write(chunk(b"data: x\n\n"))
            await writer.drain()
            await asyncio.sleep(0.02)

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(idle=1, total=0.3))
        await conn.head()
        sink = Sink()
        conn.stream(sink)
        error = await sink.done
        assert isinstance(error, UpstreamTimeout) and "total" in str(error)

    run(script, test)


def test_connection_closed_mid_body() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(b"data: 1\n\n"))
        await writer.drain()
        writer.transport.abort()

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts())
        await conn.head()
        sink = Sink()
        conn.stream(sink)
        assert isinstance(await sink.done, UpstreamClosed)

    run(script, test)


def test_garbage_instead_of_http() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts())
        with pytest.raises(UpstreamClosed, match="invalid HTTP"):
            await conn.head()

    run(script, test)


def test_connect_refused_and_bad_urls() -> None:
    async def test() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(UpstreamConnectError):
            await open_upstream(f"http://127.0.0.1:{port}/", "POST", [], b"", Timeouts())
        with pytest.raises(UpstreamConnectError, match="unsupported"):
            await open_upstream("ftp://example/", "POST", [], b"", Timeouts())

    asyncio.run(test())


def test_pause_reading_stops_delivery() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD)
        for _ in range(2000):
            writer.write(chunk(b"x" * 1000))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(idle=0.3))
        await conn.head()
        sink = Sink()
        conn.stream(sink)
        conn.pause_reading()
        await asyncio.sleep(0.2)
        received = sum(map(len, sink.body))
        await asyncio.sleep(0.5)  # longer than the idle timeout: a pause is not idleness
        assert sum(map(len, sink.body)) == received
        assert received < 1_000_000
        assert not sink.done.done()
        conn.resume_reading()
        assert await sink.done is None
        assert sum(map(len, sink.body)) == 2_000_000

    run(script, test)


# -- the protocol alone, on a fake transport ----------------------------------------

class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted

    def is_reading(self) -> bool:
        return self.reading


class Recorder:
    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.ended = False
        self.error: UpstreamError | None = None
        self.progress = 0

    def on_body(self, data: bytes) -> None:
        self.body.append(data)
        self.progress += len(data)

    def on_body_end(self) -> None:
        self.ended = True

    def on_body_error(self, error: UpstreamError) -> None:
        self.error = error


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def connected(loop: asyncio.AbstractEventLoop) -> tuple[UpstreamConnection, FakeTransport]:
    conn = UpstreamConnection(Timeouts(), loop)
    transport = FakeTransport()
    conn.connection_made(cast(asyncio.BaseTransport, transport))
    return conn, transport


def send(conn: UpstreamConnection) -> None:
    conn.send_request("POST", "/v1/x", "api.test", [("content-type", "application/json")], b"{}")


def head_error(loop: asyncio.AbstractEventLoop, conn: UpstreamConnection) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        loop.run_until_complete(conn.head())
    return caught.value


RESPONSE = HEAD + chunk(b"data: 1\n\n") + b"0\r\n\r\n"


@pytest.mark.parametrize("read_size", [len(RESPONSE), 1, 7])
def test_request_out_head_and_body_in_whatever_reads(loop: asyncio.AbstractEventLoop,
                                                     read_size: int) -> None:
    conn, transport = connected(loop)
    for request in range(2):  # the second on the recycled connection
        send(conn)
        assert transport.written[-1] == (b"POST /v1/x HTTP/1.1\r\nhost: api.test\r\n"
                                         b"content-type: application/json\r\n"
                                         b"content-length: 2\r\n\r\n{}")
        for at in range(0, len(RESPONSE), read_size):
            conn.data_received(RESPONSE[at:at + read_size])
        head = loop.run_until_complete(conn.head())
        assert (head.status, head.headers["content-type"]) == (200, "text/event-stream")
        sink = Recorder()
        conn.stream(sink)
        assert (b"".join(sink.body), sink.ended) == (b"data: 1\n\n", True)
        assert conn.recycle() and conn.state is State.IDLE and conn.requests == request + 1


def test_interim_responses_are_skipped(loop: asyncio.AbstractEventLoop) -> None:
    conn, _ = connected(loop)
    send(conn)
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n")
    conn.data_received(b"Link: </a>\r\n\r\n" + RESPONSE)
    assert loop.run_until_complete(conn.head()).status == 200


def test_a_response_before_the_request_is_invalid(loop: asyncio.AbstractEventLoop) -> None:
    conn, transport = connected(loop)
    conn.data_received(RESPONSE)
    error = head_error(loop, conn)
    assert isinstance(error, UpstreamClosed) and "invalid HTTP" in str(error)
    assert transport.aborted and conn.state is State.FAILED


@pytest.mark.parametrize("before", [b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 100 Go\r\n\r\n"])
def test_the_connection_closed_before_the_head(loop: asyncio.AbstractEventLoop,
                                               before: bytes) -> None:
    conn, _ = connected(loop)
    send(conn)
    if before:
        conn.data_received(before)
    conn.eof_received()
    error = head_error(loop, conn)
    assert isinstance(error, UpstreamClosed) and \
        str(error).startswith("provider closed the connection")


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 3000,
])
def test_invalid_http_fails_the_attempt_as_retryable(loop: asyncio.AbstractEventLoop,
                                                     response: bytes) -> None:
    conn, transport = connected(loop)
    send(conn)
    conn.data_received(response)
    error = head_error(loop, conn)
    assert isinstance(error, UpstreamClosed) and "invalid HTTP" in str(error)
    assert error.retryable and transport.aborted
    conn.data_received(b"more")  # ignored: the connection is going
    assert conn.state is State.FAILED


@pytest.mark.parametrize(("response", "reusable"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
    (b"HTTP/1.1 204 No Content\r\n\r\n", True),
    (b"HTTP/1.1 429 Too Many\r\nContent-Length: 0\r\n\r\n", True),  # ends at the head
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", True),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok", False),
    # "close" in any of several Connection fields counts
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: x-trace\r\n"
     b"Content-Length: 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok+", False),  # bytes after the body
])
def test_keep_alive_rules(loop: asyncio.AbstractEventLoop, response: bytes,
                          reusable: bool) -> None:
    conn, _ = connected(loop)
    send(conn)
    conn.data_received(response)
    loop.run_until_complete(conn.head())
    assert conn.state is State.DONE
    assert conn.keep_alive is reusable  # what the pool's disposal decision is given
    assert conn.recycle() is reusable


def test_a_body_until_close_is_never_reused(loop: asyncio.AbstractEventLoop) -> None:
    conn, _ = connected(loop)
    send(conn)
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\nall")
    loop.run_until_complete(conn.head())
    sink = Recorder()
    conn.stream(sink)
    conn.eof_received()
    assert (sink.body, sink.ended, conn.recycle()) == ([b"all"], True, False)


def test_bytes_while_idle_end_the_connection(loop: asyncio.AbstractEventLoop) -> None:
    conn, transport = connected(loop)
    send(conn)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    loop.run_until_complete(conn.head())
    assert conn.recycle()
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\n")
    assert conn.state is State.FAILED and transport.aborted


def test_a_request_that_cannot_be_sent_sends_nothing(loop: asyncio.AbstractEventLoop) -> None:
    conn, transport = connected(loop)
    with pytest.raises(LocalProtocolError):
        conn.send_request("POST", "/", "h", [("authorization", "Bearer k\r\n")], b"")
    assert transport.written == [] and conn.state is State.CONNECTING


# -- deadlines that bytes cannot move ---------------------------------------------------


def test_a_trickled_head_does_not_move_the_first_byte_deadline() -> None:
    """A byte every 50 ms would finish the head in 4 s: the head has one deadline from
    the request (as Go's ResponseHeaderTimeout)."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for byte in HEAD:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(first_byte=0.3, idle=5))
        started = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamTimeout, match=r"no response head .* within 0\.3 s"):
            await conn.head()
        assert 0.25 < asyncio.get_running_loop().time() - started < 1.0

    run(script, test)


class EventCounter(Sink):
    """A sink that counts events (blank-line-ended blocks), as the relay does."""

    def on_body(self, data: bytes) -> None:
        self.body.append(data)
        self.progress += data.count(b"\n\ndata:")


def test_only_the_sinks_progress_keeps_a_body_alive() -> None:
    """Comments every 50 ms for 2 s: to a sink that counts events they are silence
    (timed out at the idle limit), to one that counts bytes they are progress."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(b"data: 1\n\n"))
        for _ in range(40):
            await asyncio.sleep(0.05)
            writer.write(chunk(b": keep-alive\n\n"))
            await writer.drain()
        writer.write(chunk(b"data: 2\n\n") + b"0\r\n\r\n")
        await writer.drain()

    async def counting_events(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(idle=0.3))
        await conn.head()
        started = asyncio.get_running_loop().time()
        sink = EventCounter()
        conn.stream(sink)
        error = await sink.done
        assert isinstance(error, UpstreamTimeout) and "next event" in str(error)
        # never before the limit, at most a quarter of it late (and a tick)
        assert 0.3 <= asyncio.get_running_loop().time() - started < 0.6

    async def counting_bytes(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(idle=0.3))
        await conn.head()
        sink = Sink()
        conn.stream(sink)
        assert await sink.done is None

    run(script, counting_events)
    run(script, counting_bytes)


def test_an_endless_error_body_is_read_up_to_its_limit() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(chunk(b"x" * 1000))
            await writer.drain()
            await asyncio.sleep(0.001)

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(idle=5, total=10))
        await conn.head()
        body = await asyncio.wait_for(conn.read_body(limit=5000), 2)
        assert len(body) == 5000
        conn.close()

    run(script, test)


def test_body_errors_say_where_in_the_response(loop: asyncio.AbstractEventLoop) -> None:
    """Counted from the response's first byte, also on a recycled connection, and
    whatever the reads; never quoting the bytes."""
    conn, _ = connected(loop)
    send(conn)
    conn.data_received(RESPONSE)
    loop.run_until_complete(conn.head())
    conn.stream(Recorder())
    assert conn.recycle()
    send(conn)
    bad = HEAD + chunk(b"data: 1\n\n") + b"sk-zzzz\r\n"
    conn.data_received(bad[:50])
    conn.data_received(bad[50:len(HEAD) + 5])
    loop.run_until_complete(conn.head())
    sink = Recorder()
    conn.stream(sink)
    conn.data_received(bad[len(HEAD) + 5:])
    assert isinstance(sink.error, UpstreamClosed)
    assert str(sink.error) == ("provider sent a malformed body: malformed chunk size line: "
                               f"not hex digits with optional extensions at byte "
                               f"{len(HEAD) + 14} of the response")


def test_a_sink_that_closes_the_connection_ends_it_for_good(
        loop: asyncio.AbstractEventLoop) -> None:
    """A sink may close the connection while it reads (a client gone): the end of the
    body in the same read must not make the closed connection look reusable."""
    conn, transport = connected(loop)
    send(conn)
    conn.data_received(HEAD)
    loop.run_until_complete(conn.head())

    class Closer(Recorder):
        def on_body(self, data: bytes) -> None:
            super().on_body(data)
            conn.close()

    sink = Closer()
    conn.stream(sink)
    conn.data_received(chunk(b"data: 1\n\n") + b"0\r\n\r\n")
    assert conn.state is State.FAILED and transport.aborted
    assert not sink.ended and not conn.recycle()


def test_a_read_of_several_chunks_is_one_piece_and_its_end_reaches_the_new_sink(
        loop: asyncio.AbstractEventLoop) -> None:
    """A burst is one piece (its events leave in one client write); a sink that hands
    the body over mid-read (a finished stream to its drain) passes on the end."""
    conn, _ = connected(loop)
    send(conn)
    conn.data_received(HEAD)
    loop.run_until_complete(conn.head())
    second = Recorder()

    class HandsOver(Recorder):
        def on_body(self, data: bytes) -> None:
            super().on_body(data)
            conn.stream(second)

    first = HandsOver()
    conn.stream(first)
    conn.data_received(chunk(b"a") + chunk(b"b") + chunk(b"c") + b"0\r\n\r\n")
    assert (first.body, second.body) == ([b"abc"], [])
    assert second.ended and not first.ended and conn.state is State.DONE


def test_the_head_is_told_in_the_read_that_completed_it() -> None:
    """A head listener hears of the head inside the read that brought it, before that
    read's body bytes go anywhere: the sink it names gets them first-hand, with no loop
    pass between the head and the body."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(b"data: 1\n\n") + b"0\r\n\r\n")  # one write, one read
        await writer.drain()
        await asyncio.sleep(0.5)

    async def test(url: str) -> None:
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts())
        sink = Sink()
        told: list[tuple[int, State, int]] = []

        class Listener:
            def on_head(self, head: ResponseHead) -> None:
                told.append((head.status, conn.state, len(sink.body)))
                conn.stream(sink)

            def on_head_error(self, error: UpstreamError) -> None:
                raise AssertionError(error)

        conn.await_head(Listener())
        assert await sink.done is None
        assert told == [(200, State.BODY, 0)] and sink.body == [b"data: 1\n\n"]
        late: list[ResponseHead] = []  # a listener after the head hears of it at once
        conn.await_head(type("Late", (), {"on_head": lambda self, head: late.append(head),
                                          "on_head_error": None})())
        assert late == [conn.response_head]
        conn.close()

    run(script, test)


def test_a_head_that_never_comes_is_told_as_an_error_and_a_closed_one_not_at_all() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)

    async def test(url: str) -> None:
        failed = await open_upstream(url, "POST", [], b"{}", Timeouts(first_byte=0.2))
        errors: asyncio.Future[UpstreamError] = asyncio.get_running_loop().create_future()

        class Listener:
            def on_head(self, head: ResponseHead) -> None:
                raise AssertionError("no head was sent")

            def on_head_error(self, error: UpstreamError) -> None:
                errors.set_result(error)

        failed.await_head(Listener())
        assert isinstance(await errors, UpstreamTimeout)
        errors = asyncio.get_running_loop().create_future()
        closed = await open_upstream(url, "POST", [], b"{}", Timeouts(first_byte=0.2))
        closed.await_head(Listener())
        closed.close()  # given up: its listener hears nothing more
        awaited = await open_upstream(url, "POST", [], b"{}", Timeouts(first_byte=0.2))
        head = awaited.head()
        awaited.close()  # and a head awaited as a future is cancelled
        await asyncio.sleep(0.4)
        assert not errors.done() and head.cancelled()

    run(script, test)


@pytest.mark.parametrize("idle_for", [0.0, 0.5])
def test_a_pooled_connections_next_request_keeps_its_head_deadline(idle_for: float) -> None:
    """The check a response leaves set serves the next request on the connection
    (``idle_for`` 0) or, fired while the connection was idle, did nothing and is set
    again (0.5): either way the second request's head deadline counts from it, never
    earlier, and fails it in time."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(2)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await reader.readuntil(b"\r\n\r\n")  # the second request: never answered
        await asyncio.sleep(5)

    async def test(url: str) -> None:
        loop = asyncio.get_running_loop()
        conn = await open_upstream(url, "POST", [], b"{}", Timeouts(first_byte=0.3, idle=10))
        await conn.head()
        assert await conn.read_body() == b"ok" and conn.recycle()
        await asyncio.sleep(idle_for)
        assert conn.state is State.IDLE
        conn.send_request("POST", "/v1/x", "api.test", [], b"{}")
        sent = loop.time()
        with pytest.raises(UpstreamTimeout, match="first byte"):
            await conn.head()
        assert 0.3 <= loop.time() - sent < 1.5
        assert len(wheel_for(loop)) == 0  # a failed connection holds no deadline

    run(script, test)


def test_a_requests_first_check_is_worked_out_once_a_timeouts() -> None:
    """Due by the head's deadline and within a step of the idle limit both, as each
    connection worked it out before; not a field a caller gives, shows or compares."""
    for timeouts in (Timeouts(), Timeouts(first_byte=5.0), Timeouts(idle=8.0),
                     Timeouts(total=1.0), Timeouts(0.5, 0.25, 0.5, 0.75)):
        assert timeouts.first_check == min(timeouts.first_byte,
                                           timeouts.idle / IDLE_CHECKS, timeouts.total)
    assert dataclasses.replace(Timeouts(), first_byte=2.0).first_check == 2.0
    assert Timeouts() == Timeouts() and "first_check" not in repr(Timeouts())
