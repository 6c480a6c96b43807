"""The connection pool against a real keep-alive HTTP server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from sseserver.aio.pool import ConnectionPool
from sseserver.aio.upstream import State, Timeouts, UpstreamConnection
from sseserver.errors import UpstreamConnectError
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
        [origin] = pool._origins.values()
        origin.idle[0]._transport.abort()  # as if the provider had closed it
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
