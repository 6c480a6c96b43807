"""The upstream client against scripted loopback servers: timeouts, closes, flow."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

import pytest

from sseserver.aio.upstream import Timeouts, open_upstream
from sseserver.errors import UpstreamClosed, UpstreamConnectError, UpstreamError, UpstreamTimeout

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class Sink:
    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.done: asyncio.Future[UpstreamError | None] = \
            asyncio.get_running_loop().create_future()

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_end(self) -> None:
        self.done.set_result(None)

    def on_error(self, error: UpstreamError) -> None:
        self.done.set_result(error)


def run(script: Script, test: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await script(reader, writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await asyncio.wait_for(test(f"http://127.0.0.1:{port}/v1/x"), 10)
        finally:
            server.close()

    asyncio.run(main())


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
        assert isinstance(error, UpstreamTimeout) and "next chunk" in str(error)
        assert sink.body == [b"data: 1\n\n"]

    run(script, test)


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
