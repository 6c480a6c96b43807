"""The downstream HTTP protocol over real loopback sockets, with hostile clients."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from unittest.mock import patch

import pytest

from sseserver.aio import http_responses, http_server
from sseserver.aio.http_server import Admission, HTTPConnection, HTTPRequest
from sseserver.aio.log_limit import RateLimitedLog
from sseserver.config import LimitsSettings as Limits
from sseserver.core import request_checks
from sseserver.core.h11_server import NEED_DATA, RequestHead, RequestReader
from tests.conftest import run_async

FAST = Limits(header_timeout=0.3, body_timeout=0.3, keepalive_timeout=0.3,
              max_body_bytes=1000, max_head_bytes=4096, max_header_count=20)


def echo_handler(request: HTTPRequest, conn: HTTPConnection) -> None:
    if request.path == "/stream":
        writer = conn.start_stream(200, [("content-type", "text/event-stream")])
        writer.write(b"data: one\n\n")
        writer.write(b"data: two\n\n")
        writer.close()
        return
    if request.path == "/hang":
        conn.start_stream(200, [("content-type", "text/event-stream")])
        return
    conn.respond_json(200, {"method": request.method, "path": request.path,
                            "query": request.query, "body": request.body.decode()})


class Harness:
    def __init__(self, limits: Limits, handler: Callable[..., None] = echo_handler,
                 admit: Admission | None = None) -> None:
        self.limits = limits
        self.handler = handler
        self.admit = admit
        self.connections: list[HTTPConnection] = []
        self.errors: list[int] = []

    async def start(self) -> int:
        loop = asyncio.get_running_loop()

        def factory() -> HTTPConnection:
            conn = HTTPConnection(self.handler, self.limits,
                                  lambda c, status, msg: self.errors.append(status), loop,
                                  self.admit)
            self.connections.append(conn)
            return conn

        self.server = await loop.create_server(factory, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])


def run(test: Callable[[Harness, int], Awaitable[None]], limits: Limits = FAST,
        handler: Callable[..., None] = echo_handler, admit: Admission | None = None) -> None:
    async def main() -> None:
        harness = Harness(limits, handler, admit)
        port = await harness.start()
        try:
            await test(harness, port)
        finally:
            harness.server.close()

    run_async(main)


async def exchange(port: int, data: bytes, read_timeout: float = 2.0) -> bytes:
    """Send raw bytes, read until the server closes (or the timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    chunks = []
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), read_timeout)
            if not chunk:
                break
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    writer.close()
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def logged_by(action: Callable[[], None]) -> list[logging.LogRecord]:
    """What the connection layer logs at INFO and above while ``action`` runs (each
    kind of line it rate-limits starts afresh)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("sseserver.http")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    with patch.multiple(http_server,
                        _log_handler_failure=RateLimitedLog(log, logging.ERROR, 60.0),
                        _log_read_failure=RateLimitedLog(log, logging.ERROR, 60.0)), \
            patch.object(http_responses, "_log_unsendable_head",
                         RateLimitedLog(log, logging.WARNING, 60.0)):
        try:
            action()
        finally:
            log.removeHandler(handler)
            log.setLevel(level)
    return records


GET = b"GET /x?q=1 HTTP/1.1\r\nHost: t\r\n\r\n"


def test_simple_request_and_keep_alive() -> None:
    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, GET + GET, read_timeout=1)
        assert response.count(b"HTTP/1.1 200 OK\r\n") == 2
        assert b'"query":"q=1"' in response
        assert b"date: " in response.lower()
        assert len(h.connections) == 1

    run(test)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def test(h: Harness, port: int) -> None:
        requests = b"".join(
            b"POST /p%d HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n%d" % (i, i)
            for i in range(5))
        response = await exchange(port, requests + b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        paths = [int(part.split(b'"')[0]) for part in response.split(b'"path":"/p')[1:]]
        assert paths == [0, 1, 2, 3, 4]
        assert response.endswith(b"data: two\n\n\r\n0\r\n\r\n")

    run(test)


def test_streamed_response_is_chunked() -> None:
    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n", 1)
        head, _, body = response.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        assert body == b"b\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n"

    run(test)


@pytest.mark.parametrize(("raw", "status"), [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost t\r\n\r\n", 400),  # header without colon
    (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001, 413),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"1f5\r\n" + b"x" * 501 + b"\r\n" + b"1f5\r\n" + b"x" * 501 + b"\r\n0\r\n\r\n", 413),
    (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(30))
     + b"\r\n", 431),
])
def test_malformed_requests_get_an_error_and_close(raw: bytes, status: int) -> None:
    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, raw + GET)
        assert status_of(response) == status
        assert len(re.findall(rb"HTTP/1\.1 \d{3} ", response)) == 1, \
            "the connection must close after the error"
        assert b'"error":{"type"' in response
        assert b"connection: close" in response.lower()
        # the server goes on serving others
        assert status_of(await exchange(port, GET, 0.5)) == 200

    run(test)


def test_big_head_byte_by_byte_gets_431() -> None:
    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8000
        for i in range(0, len(head), 1):
            if writer.is_closing() or reader.at_eof():
                break
            writer.write(head[i:i + 1])
            if i % 512 == 0:
                await writer.drain()
        response = await asyncio.wait_for(reader.read(65536), 2)
        assert status_of(response) == 431
        writer.close()

    run(test)


def test_silent_client_is_cut_off_after_the_header_timeout() -> None:
    async def test(h: Harness, port: int) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await exchange(port, b"GET / HTTP/1.1\r\nHost:", read_timeout=3)
        elapsed = loop.time() - started
        assert status_of(response) == 408
        assert 0.25 <= elapsed < 2

    run(test)


def test_slow_body_is_cut_off() -> None:
    async def test(h: Harness, port: int) -> None:
        response = await exchange(
            port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", 3)
        assert status_of(response) == 408

    run(test)


def test_the_body_timeout_runs_from_the_head_through_a_trickle() -> None:
    """Head timeout 0.3 s, body timeout 1 s: a body trickling in is cut 1 s after its
    head (the head's timer no longer applies, and a piece does not restart the clock);
    one that completes in time is answered."""
    limits = dataclasses.replace(FAST, header_timeout=0.3, body_timeout=1.0)

    async def test(h: Harness, port: int) -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = loop.time()
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
        for piece in (b"c", b"d", b"e"):
            await asyncio.sleep(0.3)
            writer.write(piece)
        response = await asyncio.wait_for(reader.read(), 3)
        elapsed = loop.time() - started
        assert status_of(response) == 408 and b"body" in response, response
        assert 1.0 <= elapsed < 1.8, elapsed
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                     b"Connection: close\r\n\r\nab")
        await asyncio.sleep(0.5)  # past the head timeout, within the body's
        writer.write(b"cd")
        assert status_of(await asyncio.wait_for(reader.read(), 3)) == 200
        writer.close()

    run(test, limits)


def test_idle_keep_alive_connection_is_closed() -> None:
    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET)
        await reader.readuntil(b"}")
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed by the server
        writer.close()

    run(test)


def test_pipelined_flood_is_not_buffered_without_bound() -> None:
    """10 MB of pipelined requests behind a response that never ends: memory stays flat."""

    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        flood = GET * (10_000_000 // len(GET))
        writer.write(flood)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.drain(), 1.0)  # the server stopped reading
        conn = h.connections[0]
        buffered = conn._reader.buffered
        assert 0 < buffered < 2 * 1024 * 1024, buffered
        writer.transport.abort()

    run(test)


def test_slow_consumer_is_evicted() -> None:
    limits = dataclasses.replace(FAST, write_high_water=1024, write_low_water=256,
                                 max_write_buffer=1 << 30, slow_consumer_timeout=0.3)
    state: dict[str, Any] = {}

    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        writer = conn.start_stream(200, [("content-type", "text/event-stream")])
        state["conn"] = conn

        def pump() -> None:
            if writer.closed:
                return
            writer.write(b"x" * 65536)
            if not conn.flow.paused:
                asyncio.get_running_loop().call_soon(pump)
            else:
                state["paused"] = True

        pump()

    async def test(h: Harness, port: int) -> None:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
        writer.write(GET)
        writer.transport.pause_reading()
        for _ in range(40):
            await asyncio.sleep(0.05)
            if state["conn"].phase.value == "closed":
                break
        assert state.get("paused")
        assert state["conn"].phase.value == "closed"
        writer.transport.abort()

    run(test, limits, handler)


def test_write_buffer_cap_evicts_at_once() -> None:
    limits = dataclasses.replace(FAST, write_high_water=1024, write_low_water=256,
                                 max_write_buffer=4096, slow_consumer_timeout=60)
    state: dict[str, Any] = {}

    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        writer = conn.start_stream(200, [("content-type", "text/event-stream")])
        state["conn"] = conn
        for _ in range(200):  # a producer that ignores pause: the cap must hold
            writer.write(b"y" * 65536)

    async def test(h: Harness, port: int) -> None:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.pause_reading()
        writer.write(GET)
        for _ in range(20):
            await asyncio.sleep(0.05)
            if "conn" in state and state["conn"].phase.value == "closed":
                break
        assert state["conn"].phase.value == "closed"
        writer.transport.abort()

    run(test, limits, handler)


def test_repr_shows_state() -> None:
    async def test(h: Harness, port: int) -> None:
        await exchange(port, GET, 0.5)
        text = repr(h.connections[0])
        assert "served=1" in text
        assert "phase=" in text

    run(test)


def test_lenient_forms_h11_accepts_are_answered_consistently() -> None:
    """Decisions for what h11 lets through (reference/http-hardening.md): bare-LF heads
    and obs-fold continuation lines are accepted as h11 parses them (RFC 9112 allows a
    recipient to unfold), and chunk extensions are ignored; the body arrives intact."""

    async def test(h: Harness, port: int) -> None:
        bare_lf = await exchange(port, b"POST /lf HTTP/1.1\nHost: t\nContent-Length: 2\n\nok",
                                 0.5)
        assert status_of(bare_lf) == 200 and b'"body":"ok"' in bare_lf
        folded = await exchange(port, b"GET /fold HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\n\r\n",
                                0.5)
        assert status_of(folded) == 200
        extension = await exchange(port, b"POST /ext HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
                                   b"chunked\r\n\r\n2;name=value\r\nhi\r\n0\r\n\r\n", 0.5)
        assert status_of(extension) == 200 and b'"body":"hi"' in extension

    run(test)


def test_non_utf8_target_does_not_crash() -> None:
    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, b"GET /\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n", 0.5)
        assert status_of(response) in (200, 400)
        assert status_of(await exchange(port, GET, 0.5)) == 200

    run(test)


def test_http10_client_gets_a_raw_streamed_body_then_the_close() -> None:
    """An HTTP/1.0 client cannot read chunks: the body goes raw and its end is the close."""

    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, b"GET /stream HTTP/1.0\r\n\r\n", 1)
        head, _, body = response.partition(b"\r\n\r\n")
        assert b"transfer-encoding" not in head.lower()
        assert b"connection: close" in head.lower()
        assert body == b"data: one\n\ndata: two\n\n"

    run(test)


def test_connection_close_request_is_answered_then_closed() -> None:
    async def test(h: Harness, port: int) -> None:
        closing = b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Close\r\n\r\n"
        response = await exchange(port, closing + GET, 1)
        assert response.count(b"HTTP/1.1 200 OK") == 1  # the second request is not read
        assert b"connection: close" in response.lower()

    run(test)


def test_head_request_gets_the_head_without_a_body_and_stays_usable() -> None:
    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n"
                                  b"HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n" + GET, 1)
        first, second, third = response.split(b"HTTP/1.1 200 OK\r\n")[1:]
        assert b"content-length: " in first.lower() and first.endswith(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in second.lower()
        assert second.endswith(b"\r\n\r\n")  # no chunks, not even the last one
        assert b'"path":"/x"' in third

    run(test)


def test_no_content_response_has_no_length_and_keeps_the_connection() -> None:
    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond(204, [("x-n", request.path)], b"")

    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, GET + GET, 1)
        assert response.count(b"HTTP/1.1 204 No Content\r\n") == 2
        assert b"content-length" not in response.lower()

    run(test, handler=handler)


@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "a\nb", "a\rb", "a\x00b", "\x7f",
                                   "snowman \u2603"])
def test_a_header_that_cannot_be_sent_gets_a_plain_500_and_no_traceback(
        value: str, caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        if request.path == "/stream":
            conn.start_stream(200, [("x-echo", value)]).write(b"dropped")
        else:
            conn.respond(200, [("x-echo", value)], b"body")

    async def test(h: Harness, port: int) -> None:
        for path in (b"/", b"/stream"):
            response = await exchange(port, b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path, 1)
            head, _, body = response.partition(b"\r\n\r\n")
            # nothing half-sent, nothing injected: a whole 500, then the close
            assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
            assert b"x-echo" not in head and b"connection: close" in head
            assert body == b'{"error":{"type":"internal_error","message":"internal server error"}}'
        assert all(conn.phase.value == "closed" for conn in h.connections)

    with caplog.at_level(logging.DEBUG, logger="sseserver.http"):
        run(test, handler=handler)
    assert not [r for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]


def test_a_flood_of_unsendable_heads_logs_one_short_line() -> None:
    """A client that makes a handler echo a bad header in a loop cannot flood the log:
    one line per interval, no traceback."""
    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond(200, [("x-echo", "a\x01b")], b"body")

    async def test(h: Harness, port: int) -> None:
        for _ in range(20):
            assert status_of(await exchange(port, GET, 1)) == 500

    records = logged_by(lambda: run(test, handler=handler))
    assert len(records) == 1 and records[0].exc_info is None
    assert len(records[0].getMessage()) < 200


def test_a_handler_that_raises_costs_its_request_a_500_and_one_short_line() -> None:
    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        raise ValueError("secret " + request.path)

    async def test(h: Harness, port: int) -> None:
        for _ in range(20):
            response = await exchange(port, GET, 1)
            assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
            assert b"secret" not in response

    records = logged_by(lambda: run(test, handler=handler))
    assert len(records) == 1 and records[0].exc_info is None
    assert "ValueError" in records[0].getMessage()
    assert "secret" not in records[0].getMessage()


def test_a_handler_that_raises_after_answering_keeps_the_connection() -> None:
    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond(200, [], b"ok")
        raise KeyError("after")

    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, GET + GET, 0.5)
        assert response.count(b"HTTP/1.1 200 OK\r\n") == 2 and b" 500 " not in response

    records = logged_by(lambda: run(test, handler=handler))
    assert len(records) == 1 and "KeyError" in records[0].getMessage()


class BrokenReader(RequestReader):
    """A reader with a bug: whatever a client sends, a bug must cost its connection a
    500 and one short line, never a traceback from the event loop."""

    def next_event(self) -> Any:
        if self.buffered:
            raise ZeroDivisionError("a reader bug")
        return super().next_event()


def test_a_bug_in_reading_costs_the_connection_a_500_and_one_short_line() -> None:
    async def test(h: Harness, port: int) -> None:
        for _ in range(5):
            response = await exchange(port, GET, 1)
            assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
            assert b"connection: close" in response

    with patch.object(http_server, "RequestReader", BrokenReader):
        records = logged_by(lambda: run(test))
    assert len(records) == 1 and records[0].exc_info is None
    assert "ZeroDivisionError" in records[0].getMessage()


def test_a_second_answer_to_one_request_closes_the_connection() -> None:
    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond(200, [], b"one")
        conn.respond(200, [], b"two")

    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close"
                                  b"\r\n\r\n", 1)
        assert response.count(b"HTTP/1.1 200 OK") == 1 and response.endswith(b"one")

    run(test, handler=handler)


def test_requests_pipelined_behind_a_stream_are_answered_after_it() -> None:
    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n" + GET
                                  + b"GET /y HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                                  1)
        stream_end = response.index(b"0\r\n\r\n")
        assert response.index(b'"path":"/x"') > stream_end
        assert response.index(b'"path":"/y"') > response.index(b'"path":"/x"')
        assert h.connections[0].phase.value == "closed"

    run(test)


def test_a_request_sent_while_a_stream_is_out_is_answered_after_it() -> None:
    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        if request.path == "/slow":
            writer = conn.start_stream(200, [("content-type", "text/event-stream")])

            def finish() -> None:
                writer.write(b"data: late\n\n")
                writer.close()

            asyncio.get_running_loop().call_later(0.2, finish)
            return
        echo_handler(request, conn)

    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(GET)  # arrives while the stream is still open
        response = await asyncio.wait_for(reader.readuntil(b'"body":""}'), 2)
        assert response.index(b"data: late") < response.index(b"0\r\n\r\n") < \
            response.index(b'"path":"/x"')
        writer.close()

    run(test, handler=handler)


@pytest.mark.parametrize(("raw", "status"), [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # RFC 9112 §3.2: HTTP/1.1 needs a Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 2\r\n\r\n", 400),
])
def test_requests_the_reader_refuses_get_its_status_and_close(raw: bytes, status: int) -> None:
    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, raw + GET, 1)
        # with its standard reason phrase (501 went out as "Unknown")
        assert response.startswith(f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                                   .encode())
        assert len(re.findall(rb"HTTP/1\.1 \d{3} ", response)) == 1
        assert h.errors == [status]

    run(test)


def test_requests_then_a_half_close_are_all_answered() -> None:
    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET + b"GET /y HTTP/1.1\r\nHost: t\r\n\r\n")
        writer.write_eof()
        response = await asyncio.wait_for(reader.read(), 2)  # then the server closes
        assert response.count(b"HTTP/1.1 200 OK") == 2
        assert response.index(b'"path":"/x"') < response.index(b'"path":"/y"')
        writer.close()

    run(test)


def test_a_request_cut_by_the_end_of_input_gets_400() -> None:
    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        writer.write_eof()
        response = await asyncio.wait_for(reader.read(), 2)
        assert status_of(response) == 400 and h.errors == [400]
        writer.close()

    run(test)


CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("chunks, status", [(16, 200), (17, 413)])
def test_a_chunked_body_is_bounded_in_chunks(chunks: int, status: int) -> None:
    """Past ``max_body_chunks`` a body is refused however few its bytes (each chunk
    costs h11 the same), at the bound and not before."""
    limits = dataclasses.replace(FAST, max_body_chunks=16)

    async def test(h: Harness, port: int) -> None:
        body = b"1\r\nx\r\n" * chunks + b"0\r\n\r\n"
        response = await exchange(port, CHUNKED_HEAD + body, read_timeout=0.5)
        assert status_of(response) == status
        if status == 413:
            assert b"more than 16 chunks" in response
            assert b"connection: close" in response.lower()
        else:
            assert b'"body":"' + b"x" * chunks + b'"' in response

    run(test, limits)


def test_a_chunk_split_over_reads_counts_once() -> None:
    reader = RequestReader()
    reader.feed(CHUNKED_HEAD)
    assert isinstance(reader.next_event(), RequestHead)
    for piece in (b"a\r\n01234", b"56789\r\n", b"3\r\nabc\r\n"):
        reader.feed(piece)
        while reader.next_event() is not NEED_DATA:
            pass
    assert reader.body_chunks == 2


@pytest.mark.parametrize("value", [
    "close", "Close", "CLOSE", "keep-alive", "keep-alive, close", "close, upgrade",
    " close ", "\tclose", "closed", "enclose", "close-ish", "upgrade,close", "", ",",
    "keep-alive,\tClose\t", "x-close", "close,", "clos", "c lose"])
def test_connection_close_option_read_as_the_general_list_reading(value: str) -> None:
    # the shortcuts (the whole value is "close"; no "close" anywhere) answer as
    # splitting the option list does
    assert request_checks.asks_close(value) is request_checks.lists_close(value.lower())


def _without_dates(response: bytes) -> bytes:
    return re.sub(rb"\r\ndate: [^\r]*", b"", response, flags=re.IGNORECASE)


def test_a_request_whole_in_one_read_is_handled_as_one_in_pieces() -> None:
    """A body that comes with its head is taken with its end in one step: the handler
    gets the request a client sending it in pieces gets it as, the same events are
    counted, and a body over the limit is refused the same way."""
    seen: list[tuple[object, ...]] = []

    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        seen.append((request.method, request.path, request.query, request.headers,
                     request.http_version, request.body, conn.attained))
        conn.respond_json(200, {"ok": True})

    post = (b"POST /v1/stream?a=1 HTTP/1.1\r\nHost: h\r\nX-Twice: 1\r\nx-twice: 2\r\n"
            b"Content-Length: 11\r\n\r\n{\"a\": \"b\"}\n")
    get = b"GET /g HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    too_long = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001

    async def pieces(port: int, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(0, len(data), 7):
            writer.write(data[i:i + 7])
            await writer.drain()
            await asyncio.sleep(0.002)
        response = await asyncio.wait_for(reader.read(), 2.0)
        writer.close()
        return response

    async def test(harness: Harness, port: int) -> None:
        whole = await exchange(port, post + get)
        whole_seen = list(seen)
        seen.clear()
        split = await pieces(port, post + get)
        # the events counted: a head, a piece, an end (in pieces, a piece a read)
        assert [item[-1] for item in whole_seen] == [3, 5]
        assert [item[:-1] for item in whole_seen] == [item[:-1] for item in seen]
        # the same bytes but the Date lines (the two exchanges may fall in two seconds)
        assert len(seen) == 2 and _without_dates(whole) == _without_dates(split)
        assert status_of(await exchange(port, too_long)) == 413
        head_alone = too_long[:too_long.index(b"\r\n\r\n") + 4]
        assert status_of(await exchange(port, head_alone)) == 413

    run(test, Limits(header_timeout=2.0, body_timeout=2.0, keepalive_timeout=2.0,
                     max_body_bytes=1000, max_head_bytes=4096, max_header_count=20),
        handler)
