"""Opening an upstream connection: the connect limit on the loop's wheel decides as
``asyncio.timeout`` would (a timeout is an UpstreamTimeout, any other cancellation
stays one), against real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from sseserver.aio.connect import _ConnectLimit, connect, parse_url
from sseserver.aio.upstream import Timeouts
from sseserver.aio.wheel import RESOLUTION, wheel_for
from sseserver.errors import UpstreamConnectError, UpstreamTimeout
from tests.conftest import blackhole_port, loopback_server, run_async


@pytest.fixture()
def blackhole() -> Iterator[int]:
    with blackhole_port() as port:
        yield port


def test_a_target_knows_its_origin() -> None:
    target = parse_url("https://user:pw@api.example.com:8443/v1/chat?x=1")
    assert target.origin == "https://api.example.com:8443"
    assert target.authority == "api.example.com:8443" and target.path == "/v1/chat?x=1"
    assert parse_url("http://127.0.0.1/").origin == "http://127.0.0.1"


def test_a_connection_knows_its_origin() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def main() -> None:
        async with loopback_server(handle) as port:
            conn = await connect(parse_url(f"http://127.0.0.1:{port}/x"), Timeouts())
            assert conn.origin == f"http://127.0.0.1:{port}"
            conn.close()

    run_async(main)


def test_a_connect_past_its_limit_is_an_upstream_timeout(blackhole: int) -> None:
    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout, match=r"took longer than 0\.2 s"):
            await connect(parse_url(f"http://127.0.0.1:{blackhole}/"), Timeouts(connect=0.2))
        assert 0.2 <= time.monotonic() - started < 2.0
        assert task.cancelling() == 0  # the limit's own cancellation is taken back
        await asyncio.sleep(0)  # and the task runs on, not cancelled later

    run_async(main)


def test_a_refused_connect_is_a_connect_error_and_leaves_no_deadline() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> None:
        with pytest.raises(UpstreamConnectError):
            await connect(parse_url(f"http://127.0.0.1:{port}/"), Timeouts(connect=0.05))
        await asyncio.sleep(0.05 + 3 * RESOLUTION)  # past the limit: nothing cancels us

    run_async(main)


def test_a_connect_cancelled_from_outside_stays_cancelled(blackhole: int) -> None:
    async def main() -> None:
        attempt = asyncio.ensure_future(
            connect(parse_url(f"http://127.0.0.1:{blackhole}/"), Timeouts(connect=5.0)))
        await asyncio.sleep(0.05)
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt

    run_async(main)


async def _limited(delay: float, waited: asyncio.Future[None], wheel_limit: bool,
                   cancelled_as_it_expires: bool) -> str:
    """How a wait ends under the connect limit (as connect uses it) or asyncio.timeout;
    ``cancelled_as_it_expires``: the limit fires and an outside cancellation comes in
    the same loop pass."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    try:
        if wheel_limit:
            limit = _ConnectLimit(loop, wheel_for(loop), delay)
            if cancelled_as_it_expires:
                loop.call_soon(lambda: (limit._expire(), task.cancel()))
            try:
                await waited
            except asyncio.CancelledError:
                if limit.expired():
                    return "timeout"
                raise
            finally:
                limit.cancel()
        else:
            try:
                async with asyncio.timeout(delay) as timeout:
                    if cancelled_as_it_expires:
                        loop.call_soon(lambda: (timeout._on_timeout(), task.cancel()))
                    await waited
            except TimeoutError:
                return "timeout"
    except asyncio.CancelledError:
        return "cancelled"
    return "done"


@pytest.mark.parametrize("scenario", ["done", "expires", "cancelled", "cancelled as it expires"])
def test_the_connect_limit_decides_as_asyncio_timeout(scenario: str) -> None:
    async def outcome(wheel_limit: bool) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        waited: asyncio.Future[None] = loop.create_future()
        task = asyncio.ensure_future(_limited(0.1, waited, wheel_limit,
                                              scenario == "cancelled as it expires"))
        await asyncio.sleep(0.01)
        if scenario == "done":
            waited.set_result(None)
        elif scenario == "cancelled":
            task.cancel()
        result = await task
        return result, task.cancelling()

    async def main() -> None:
        expected = await outcome(wheel_limit=False)
        assert await outcome(wheel_limit=True) == expected
        assert expected[0] == scenario.split()[0].replace("expires", "timeout")

    run_async(main)


def test_the_connect_limits_deadline_becomes_the_connections_check() -> None:
    """Connected, the limit's pending deadline is the connection's one check: it never
    cancels the task after, and the request's head deadline, longer than the connect
    limit, still counts from the request and fails it in time, never early."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)  # never answers

    async def main() -> None:
        loop = asyncio.get_running_loop()
        wheel = wheel_for(loop)
        async with loopback_server(handle) as port:
            timeouts = Timeouts(connect=0.1, first_byte=0.4, idle=10)
            conn = await connect(parse_url(f"http://127.0.0.1:{port}/x"), timeouts)
            assert len(wheel) == 1  # the limit's deadline, the connection's now
            await asyncio.sleep(0.05)
            conn.send_request("POST", "/x", "api.test", [], b"{}")
            sent = loop.time()
            assert len(wheel) == 1  # due first: the request set none of its own
            with pytest.raises(UpstreamTimeout, match="first byte"):
                await conn.head()  # the limit's deadline passed: no cancellation came
            assert 0.4 <= loop.time() - sent < 1.5
            assert len(wheel) == 0

    run_async(main)


def test_a_connection_whose_limits_are_shorter_than_the_connect_limit_sets_its_own() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with loopback_server(handle) as port:
            timeouts = Timeouts(connect=5.0, first_byte=0.2)
            conn = await connect(parse_url(f"http://127.0.0.1:{port}/x"), timeouts)
            conn.send_request("POST", "/x", "api.test", [], b"{}")
            sent = loop.time()
            assert len(wheel_for(loop)) == 1  # the limit's deadline gave way
            with pytest.raises(UpstreamTimeout, match="first byte"):
                await conn.head()
            assert 0.2 <= loop.time() - sent < 1.5

    run_async(main)
