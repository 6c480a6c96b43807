"""What one connection's input may cost the others: work per turn of the event loop,
and what a client that does not read its answers may pile up in the server."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

from sseserver.aio.http_server import HTTPConnection, HTTPRequest, Phase
from sseserver.aio.input_queue import EVENTS_PER_LOOP_TURN, EVENTS_PER_TURN
from sseserver.config import LimitsSettings
from sseserver.core.h11_server import HEAD_SLICE
from tests.aio.test_http_server import (
    FAST,
    GET,
    Harness,
    echo_handler,
    exchange,
    logged_by,
    run,
)


class FakeTransport:
    """Records what the connection asks of its socket."""

    def __init__(self) -> None:
        self.written = b""
        self.reading = True
        self.closed = False

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 1) if name == "peername" else None

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True


async def connection(handler: object = echo_handler,
                     limits: LimitsSettings = FAST) -> tuple[HTTPConnection, FakeTransport]:
    conn = HTTPConnection(handler, limits,  # type: ignore[arg-type]
                          lambda c, status, message: None, asyncio.get_running_loop())
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


async def turns_until(condition: object, limit: int = 10_000) -> int:
    """Loop turns until ``condition()`` holds."""
    for turn in range(limit):
        if condition():  # type: ignore[operator]
            return turn
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def test_pipelined_requests_in_one_read_are_answered_a_few_per_turn() -> None:
    """uvloop delivers up to 32 reads in one turn; each used to be read to its end
    (5 MB of pipelined requests held the loop for seconds)."""
    served: list[str] = []
    per_turn = EVENTS_PER_TURN // 2  # a GET is a head and an end

    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        served.append(request.path)
        conn.respond(200, [], b"")

    async def main() -> None:
        conn, transport = await connection(handler)
        conn.data_received(GET * 500)
        assert len(served) == per_turn and not transport.reading  # the rest waits
        conn.data_received(GET)  # a read the loop had already made: kept, not read now
        assert len(served) == per_turn
        turns = await turns_until(lambda: len(served) == 501)
        assert turns >= 500 // per_turn and transport.reading  # all read: read again
        assert transport.written.count(b"HTTP/1.1 200 OK\r\n") == 501

    asyncio.run(main())


def test_a_body_of_tiny_chunks_is_read_a_few_slices_per_turn() -> None:
    # the head's timeout runs until the body arrived with it is read: h11 reads these
    # 50,000 chunks in about half a second on a loaded machine, past FAST's 0.3 s
    # (and no bound on chunks: what is read per turn is what this test measures)
    limits = dataclasses.replace(FAST, max_body_bytes=1 << 20, header_timeout=10,
                                 max_body_chunks=0)
    body = b"1\r\nx\r\n" * 50_000 + b"0\r\n\r\n"  # ~300 KiB of framing for 50 KB

    async def main() -> None:
        conn, transport = await connection(limits=limits)
        conn.data_received(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                           b"\r\n" + body)
        assert conn._reader.buffered > len(body) - 64 * 1024
        assert not transport.reading and conn.phase is Phase.READING
        turns = await turns_until(lambda: b"HTTP/1.1 200" in transport.written)
        assert turns >= 5
        assert transport.written.endswith(b'"body":"' + b"x" * 50_000 + b'"}')

    asyncio.run(main())


def test_many_connections_share_one_budget_per_turn() -> None:
    """50 connections with bodies of tiny chunks: each read its eight events per turn,
    so a turn cost all of them together (3.4 s for /healthz here)."""
    limits = dataclasses.replace(FAST, max_body_bytes=1 << 20, max_body_chunks=0)
    body = b"1\r\nx\r\n" * 20_000

    async def main() -> None:
        conns = [await connection(limits=limits) for _ in range(50)]
        for conn, _ in conns:
            conn.data_received(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
                               b"chunked\r\n\r\n" + body)
        left = sum(conn._reader.buffered for conn, _ in conns)
        for _ in range(20):
            await asyncio.sleep(0)
            now = sum(conn._reader.buffered for conn, _ in conns)
            # a turn reads its budget, and the last connection read may finish its eight
            # (an event takes a body slice, the first after a head at most a head slice)
            assert left - now <= (EVENTS_PER_LOOP_TURN + EVENTS_PER_TURN) * HEAD_SLICE
            left = now

    asyncio.run(main())


def test_a_fresh_request_goes_ahead_of_a_backlog() -> None:
    """Least attained service: a connection that has had fewer events is read first."""
    served: list[str] = []

    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        served.append(request.path)
        conn.respond(200, [], b"")

    async def main() -> None:
        flood, _ = await connection(handler)
        fresh, _ = await connection(handler)
        flood.data_received(GET * 500)  # takes this turn's budget
        fresh.data_received(b"GET /fresh HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(0)
        assert "/fresh" in served[:EVENTS_PER_TURN // 2 + 1]

    asyncio.run(main())


def test_chunk_framing_counts_against_the_body_limit() -> None:
    """Chunk extensions of 64 MiB passed as a request of a few bytes."""
    framing = (b"1;" + b"e" * 300 + b"\r\nx\r\n") * 5  # 5 bytes of payload, ~1.5 KB sent

    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, b"POST / HTTP/1.1\r\nHost: t\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n" + framing
                                  + b"0\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
        assert h.errors == [413]

    run(test)


def small_receive_buffer_client(port: int) -> socket.socket:
    """A client that never reads, with a small receive buffer, so the server's answers
    back up into its own write buffer at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


BIG = dataclasses.replace(FAST, write_high_water=16 * 1024, write_low_water=4 * 1024,
                          max_write_buffer=256 * 1024, header_timeout=5,
                          keepalive_timeout=5)


def test_no_request_is_taken_while_the_client_does_not_read_its_answers() -> None:
    """Answers to a client that pipelines and never reads were queued without end
    (RSS 29 -> 196 MiB in 8 s); now the next request waits for resume_writing."""
    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond(200, [], b"x" * 20_000)

    async def test(h: Harness, port: int) -> None:
        sock = small_receive_buffer_client(port)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, GET * 400)
        await asyncio.sleep(0.3)
        conn = h.connections[0]
        assert conn.flow.paused and conn.requests_served < 400
        held = conn.requests_served
        await asyncio.sleep(0.2)
        assert conn.requests_served == held  # nothing more taken while paused
        received = 0  # reading now: every answer comes, in turn
        while received < 400 * 20_000:
            received += len(await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 2))
        assert conn.requests_served == 400
        sock.close()

    run(test, limits=BIG, handler=handler)


def test_a_whole_response_past_the_write_cap_evicts_as_a_stream_does() -> None:
    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        conn.respond(200, [], b"x" * (16 << 20))

    async def test(h: Harness, port: int) -> None:
        sock = small_receive_buffer_client(port)
        await asyncio.get_running_loop().sock_sendall(sock, GET)
        await asyncio.sleep(0.3)  # sooner than the slow-consumer timeout
        assert h.connections[0].phase is Phase.CLOSED
        sock.close()
        await asyncio.sleep(0.5)  # past it: the eviction is not logged twice

    limits = dataclasses.replace(BIG, slow_consumer_timeout=0.5)
    records = logged_by(lambda: run(test, limits=limits, handler=handler))
    assert [r.getMessage().split(": ")[-1] for r in records] == [
        "write buffer limit exceeded"]
