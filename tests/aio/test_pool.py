"""The connection pool against a real keep-alive HTTP server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from sseserver.aio import pool as pool_module
from sseserver.aio.pool import ConnectionPool
from sseserver.aio.upstream import State, Timeouts, UpstreamConnection
from sseserver.core import pooling
from sseserver.core.pooling import MAX_DRAIN_BYTES, Disposal
from sseserver.errors import UpstreamConnectError, UpstreamError
from tests.conftest import loopback_server, run_async

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def run(test: Callable[[str, dict[str, int]], Awaitable[None]], close_after: bool = False
        ) -> None:
    """``test`` against a loopback keep-alive server that counts its connections and
    requests (and closes after each answer when ``close_after``)."""
    counts = {"connections": 0, "requests": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                counts["requests"] += 1
                if close_after:
                    writer.write(RESPONSE.replace(b"OK\r\n", b"OK\r\nConnection: close\r\n"))
                    await writer.drain()
                    writer.close()
                    return
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        async with loopback_server(handle) as port:
            await test(f"http://127.0.0.1:{port}/x", counts)

    run_async(main)


async def fetch(pool: ConnectionPool, url: str) -> bytes:
    return await finish(pool, await pool.request(url, "POST", [], b"{}"))


async def finish(pool: ConnectionPool, conn: UpstreamConnection) -> bytes:
    """Read the response on ``conn`` to its end and give the connection back."""
    await conn.head()
    body = await conn.read_body()
    pool.release(conn)
    return body


def test_keep_alive_connections_are_reused() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts())
        for _ in range(5):
            assert await fetch(pool, url) == b"ok"
        assert counts == {"connections": 1, "requests": 5}
        assert (pool.opened, pool.reused) == (1, 4)
        assert "idle=1" in repr(pool)
        pool.close()

    run(test)


def test_connection_close_is_never_reused() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts())
        for _ in range(3):
            assert await fetch(pool, url) == b"ok"
        assert counts["connections"] == 3 and pool.reused == 0

    run(test, close_after=True)


def test_a_broken_response_is_never_reused() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts())
        conn = await pool.request(url, "POST", [], b"{}")
        await conn.head()
        pool.discard(conn)  # e.g. the client went away mid-body
        assert conn.state is State.FAILED
        assert await fetch(pool, url) == b"ok"
        assert pool.opened == 2

    run(test)


def test_cap_per_origin_makes_requests_wait() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts(), max_per_origin=2)
        first = await pool.request(url, "POST", [], b"{}")
        second = await pool.request(url, "POST", [], b"{}")
        third = asyncio.ensure_future(pool.request(url, "POST", [], b"{}"))
        await asyncio.sleep(0.1)
        assert not third.done()
        await finish(pool, first)
        conn = await asyncio.wait_for(third, 1)
        assert conn is first  # the released connection served the waiter
        for c in (second, conn):
            await finish(pool, c)
        assert counts["connections"] == 2
        pool.close()

    run(test)


def test_request_idle_sends_on_an_idle_connection_at_once_or_gives_none() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts(), max_per_origin=1)
        assert pool.request_idle(url, "POST", [], b"{}") is None  # nothing idle yet
        assert await fetch(pool, url) == b"ok"
        conn = pool.request_idle(url, "POST", [], b"{}")  # no await: the request is out
        assert conn is not None and conn.state is State.AWAITING_HEAD
        assert pool.request_idle(url, "POST", [], b"{}") is None  # the only one is busy
        waiter = asyncio.ensure_future(pool.request(url, "POST", [], b"{}"))
        await asyncio.sleep(0.05)
        await finish(pool, conn)
        # the waiter came first: the freed connection is not taken from under it
        assert pool.request_idle(url, "POST", [], b"{}") is None
        second = await asyncio.wait_for(waiter, 1)
        assert second is conn
        assert await finish(pool, second) == b"ok"
        assert (counts["connections"], counts["requests"], pool.reused) == (1, 3, 2)
        pool.close()

    run(test)


def test_a_waiter_cancelled_after_its_wake_up_passes_it_on() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts(), max_per_origin=1)
        first = await pool.request(url, "POST", [], b"{}")
        woken = asyncio.ensure_future(pool.request(url, "POST", [], b"{}"))
        next_in_line = asyncio.ensure_future(pool.request(url, "POST", [], b"{}"))
        await asyncio.sleep(0.05)
        await finish(pool, first)  # wakes the first waiter...
        woken.cancel()  # ...which is cancelled before it runs
        conn = await asyncio.wait_for(next_in_line, 1)
        assert conn is first and woken.cancelled()
        origin = next(iter(pool._origins.values()))
        assert (origin.woken, len(origin.waiters)) == (0, 0)
        await finish(pool, conn)
        assert counts["connections"] == 1
        pool.close()

    run(test)


def test_idle_connections_are_closed_after_the_idle_timeout() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts(), idle_timeout=0.1)
        await fetch(pool, url)
        await asyncio.sleep(0.3)
        assert "idle=0" in repr(pool)
        await fetch(pool, url)
        assert counts["connections"] == 2

    run(test)


def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts())
        await fetch(pool, url)
        [conn] = pool._idle
        conn._transport.abort()  # as if the provider had closed it
        await asyncio.sleep(0.05)
        assert await fetch(pool, url) == b"ok"
        assert pool.opened == 2

    run(test)


def test_a_request_that_cannot_be_sent_frees_its_slot() -> None:
    """A header with a line break (a mis-pasted API key) is refused before any byte goes
    out, and the connection's slot is given back, so the next request still runs."""

    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts(), max_per_origin=1)
        for _ in range(3):
            with pytest.raises(UpstreamConnectError, match="cannot send") as caught:
                await pool.request(url, "POST", [("authorization", "Bearer k\r\nx: 1")], b"{}")
            assert caught.value.retryable is False
        assert await asyncio.wait_for(fetch(pool, url), 2) == b"ok"
        assert counts["requests"] == 1
        pool.close()

    run(test)


# -- finish: reuse, drain or close, as the pool decides ----------------------------------

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
LAST_EVENT = b"e\r\ndata: [DONE]\n\n\r\n"
END = b"0\r\n\r\n"
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


def serve(script: Script, test: Callable[[str, dict[str, int]], Awaitable[None]]) -> None:
    """A keep-alive server that answers each request by ``script(writer, number)``;
    counts connections, requests, and connections the client closed."""
    async def main() -> None:
        counts = {"connections": 0, "requests": 0, "closed_by_client": 0}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            counts["connections"] += 1
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    await reader.readexactly(2)
                    counts["requests"] += 1
                    await script(reader, writer, counts["requests"])
            except (asyncio.IncompleteReadError, ConnectionError):
                counts["closed_by_client"] += 1
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await asyncio.wait_for(test(f"http://127.0.0.1:{port}/x", counts), 10)
        finally:
            server.close()

    asyncio.run(main())


async def until(condition: Callable[[], bool], limit: float = 3.0) -> None:
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def read_to_last_event(conn: UpstreamConnection) -> None:
    """As the relay reads a stream: until the provider's last event, not the body's end."""
    await conn.head()
    seen = asyncio.get_running_loop().create_future()

    class Sink:
        progress = 0

        def on_body(self, data: bytes) -> None:
            if b"[DONE]" in data and not seen.done():
                seen.set_result(None)

        def on_body_end(self) -> None: ...

        def on_body_error(self, error: UpstreamError) -> None: ...

    conn.stream(Sink())
    await seen


async def until_closed(reader: asyncio.StreamReader) -> None:
    """Wait, as a provider still generating, until the client closes the connection."""
    if not await reader.read(1):
        raise ConnectionResetError


async def stream_with_late_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               number: int) -> None:
    writer.write(HEAD + LAST_EVENT)
    await writer.drain()
    await asyncio.sleep(0.1)  # the body's end follows the last event
    writer.write(END)


def test_a_finished_stream_is_drained_then_reused() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts())
        conn = await pool.request(url, "POST", [], b"{}")
        await read_to_last_event(conn)
        assert conn.state is State.BODY
        assert pool.finish(conn, complete=True) is Disposal.DRAIN
        assert "drained=1" in repr(pool)
        await until(lambda: len(pool._idle) == 1)
        again = await pool.request(url, "POST", [], b"{}")
        assert again is conn
        await read_to_last_event(again)
        await until(lambda: again.state is State.DONE)
        assert pool.finish(again, complete=True) is Disposal.REUSE
        assert (counts["connections"], counts["requests"], pool.reused) == (1, 2, 1)
        pool.close()

    serve(stream_with_late_end, test)


def test_a_stream_given_up_midway_is_closed_at_once() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts())
        conn = await pool.request(url, "POST", [], b"{}")
        await read_to_last_event(conn)
        assert pool.finish(conn, complete=False) is Disposal.DISCARD
        assert conn.state is State.FAILED
        await until(lambda: counts["closed_by_client"] == 1)  # the provider saw it go
        assert "idle=0 in_use=0" in repr(pool)

    serve(stream_with_late_end, test)


def test_a_drain_past_its_byte_bound_closes_the_connection() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      number: int) -> None:
        writer.write(HEAD + LAST_EVENT)
        await writer.drain()
        await asyncio.sleep(0.1)  # the stream is finished when the rest comes
        piece = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
        for _ in range(MAX_DRAIN_BYTES // 0x4000 + 4):  # past the bound, then silence
            writer.write(piece)
        await writer.drain()
        await until_closed(reader)

    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts())
        conn = await pool.request(url, "POST", [], b"{}")
        await read_to_last_event(conn)
        assert pool.finish(conn, complete=True) is Disposal.DRAIN
        # well before the grace ends: the bytes, not the time, ended the drain
        await until(lambda: conn.state is State.FAILED, limit=pooling.DRAIN_GRACE / 2)
        await until(lambda: counts["closed_by_client"] == 1)
        assert "idle=0 in_use=0" in repr(pool)

    serve(endless, test)


def test_a_drain_past_its_grace_closes_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "DRAIN_GRACE", 0.2)

    async def never_ends(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         number: int) -> None:
        writer.write(HEAD + LAST_EVENT)
        await writer.drain()
        await until_closed(reader)

    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts())
        conn = await pool.request(url, "POST", [], b"{}")
        await read_to_last_event(conn)
        assert pool.finish(conn, complete=True) is Disposal.DRAIN
        await asyncio.sleep(0.1)
        assert conn.state is State.BODY  # still given its chance
        await until(lambda: conn.state is State.FAILED)
        await until(lambda: counts["closed_by_client"] == 1)

    serve(never_ends, test)


def test_a_response_with_connection_close_is_closed_when_finished() -> None:
    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts())
        conn = await pool.request(url, "POST", [], b"{}")
        await conn.head()
        await conn.read_body()
        assert pool.finish(conn, complete=True) is Disposal.DISCARD
        assert await fetch(pool, url) == b"ok"
        assert pool.opened == 2

    run(test, close_after=True)


# -- idle expiry: exact, on a virtual clock; a constant cost per connection --------------


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only when a test moves it."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def time(self) -> float:
        return self.now


class IdleConn:
    """What the pool asks of an idle connection; counts every hash and comparison made
    of it, and every check of whether it is still open."""

    touched = 0

    def __init__(self, origin: str, loop: VirtualClockLoop) -> None:
        self.origin = origin
        self._loop = loop
        self.idle_since = 0.0
        self.closed_at: float | None = None

    def __hash__(self) -> int:
        IdleConn.touched += 1
        return id(self) >> 4

    def __eq__(self, other: object) -> bool:
        IdleConn.touched += 1
        return self is other

    @property
    def reusable(self) -> bool:
        IdleConn.touched += 1
        return self.closed_at is None

    def recycle(self) -> bool:
        self.idle_since = self._loop.time()
        return True

    def close(self) -> None:
        if self.closed_at is None:
            self.closed_at = self._loop.time()


def run_virtual(test: Callable[[VirtualClockLoop], Awaitable[None]]) -> None:
    loop = VirtualClockLoop()
    try:
        loop.run_until_complete(asyncio.wait_for(test(loop), 1000))
    finally:
        loop.close()


async def at(loop: VirtualClockLoop, now: float) -> None:
    """Move the clock to ``now`` and let what is due run."""
    loop.now = now
    for _ in range(3):
        await asyncio.sleep(0)


def give_back(pool: ConnectionPool, conn: IdleConn) -> None:
    """Into the pool as a connection whose response ended."""
    pool._origin(conn.origin).in_use.add(conn)  # type: ignore[arg-type]
    pool.release(conn)  # type: ignore[arg-type]


def test_idle_connections_expire_exactly_at_their_timeout() -> None:
    async def test(loop: VirtualClockLoop) -> None:
        pool = ConnectionPool(Timeouts(), idle_timeout=30.0)
        first, second = IdleConn("http://a", loop), IdleConn("http://b", loop)
        give_back(pool, first)
        await at(loop, 10.0)
        give_back(pool, second)
        await at(loop, 29.99)
        assert first.closed_at is None
        await at(loop, 30.0)
        assert first.closed_at == 30.0 and second.closed_at is None
        await at(loop, 39.99)
        assert second.closed_at is None  # not swept early with the first
        await at(loop, 40.0)
        assert second.closed_at == 40.0  # nor kept up to twice its timeout
        assert "idle=0" in repr(pool) and pool._expiry is None
        pool.close()

    run_virtual(test)


def test_a_connection_taken_from_idle_is_not_expired() -> None:
    async def test(loop: VirtualClockLoop) -> None:
        pool = ConnectionPool(Timeouts(), idle_timeout=30.0)
        first, second = IdleConn("http://a", loop), IdleConn("http://a", loop)
        give_back(pool, first)
        await at(loop, 5.0)
        give_back(pool, second)
        origin = pool._origin("http://a")
        assert pool._take_idle(origin) is second and pool._take_idle(origin) is first
        await at(loop, 30.0)  # the timer was due for the first: nothing to expire
        give_back(pool, first)
        await at(loop, 59.99)
        assert first.closed_at is None and second.closed_at is None
        await at(loop, 60.0)
        assert first.closed_at == 60.0 and second.closed_at is None
        pool.close()

    run_virtual(test)


IDLE = 10_000
# Hashes, comparisons and liveness checks one step may make, whatever the number idle;
# the sweep it replaces made a scan of every idle connection for each one it kept.
PER_STEP = 12


def test_ten_thousand_idle_connections_cost_a_constant_per_step() -> None:
    async def test(loop: VirtualClockLoop) -> None:
        pool = ConnectionPool(Timeouts(), idle_timeout=30.0)
        conns = [IdleConn(f"http://o{i % 4}", loop) for i in range(IDLE)]
        for i, conn in enumerate(conns):
            loop.now = i * 0.001  # one goes idle every millisecond
            before = IdleConn.touched
            give_back(pool, conn)
            assert IdleConn.touched - before <= PER_STEP
        for i in range(5):  # each expires in its turn, touching only itself
            before = IdleConn.touched
            await at(loop, 30.0 + i * 0.001)
            assert IdleConn.touched - before <= PER_STEP
            assert conns[i].closed_at == 30.0 + i * 0.001 and conns[i + 1].closed_at is None
        before = IdleConn.touched
        assert pool._take_idle(pool._origin("http://o3")) is conns[-1]
        assert IdleConn.touched - before <= PER_STEP
        assert f"idle={IDLE - 6}" in repr(pool)
        pool.close()

    run_virtual(test)


def test_a_connection_the_provider_closes_while_idle_leaves_the_pool_at_once() -> None:
    """Not at its expiry: its slot of the origin is free for the next request now."""
    async def closes_after_the_response(reader: asyncio.StreamReader,
                                        writer: asyncio.StreamWriter, number: int) -> None:
        writer.write(RESPONSE)  # keep-alive, as far as the client can tell
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        raise ConnectionResetError

    async def test(url: str, counts: dict[str, int]) -> None:
        pool = ConnectionPool(Timeouts(), max_per_origin=1, idle_timeout=300.0)
        assert await fetch(pool, url) == b"ok"
        assert "idle=1" in repr(pool)
        await until(lambda: "idle=0" in repr(pool))
        assert await asyncio.wait_for(fetch(pool, url), 2) == b"ok"
        assert pool.opened == 2

    serve(closes_after_the_response, test)
