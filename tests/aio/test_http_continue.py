"""`Expect: 100-continue` (RFC 9110 §10.1.1) over real loopback sockets: the interim
100 when the body is wanted and has not come, the final status at once when the
request is refused anyway, and no 100 where none belongs."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time

import pytest

from sseserver.aio.http_server import HTTPConnection, HTTPRequest
from tests.aio.test_http_server import FAST, Harness, exchange, run, status_of

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HEAD = b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"


async def first_bytes(reader: asyncio.StreamReader, timeout: float = 0.3) -> bytes:
    """What the server sends within ``timeout`` (b"" if nothing)."""
    try:
        return await asyncio.wait_for(reader.read(65536), timeout)
    except TimeoutError:
        return b""


@pytest.mark.parametrize("expect", [b"100-continue", b"100-Continue"])  # case-insensitive
def test_a_client_awaiting_100_gets_it_then_sends_its_body(expect: bytes) -> None:
    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEAD.replace(b"100-continue", expect))
        assert await first_bytes(reader, 2) == CONTINUE
        writer.write(b"ok")
        response = await asyncio.wait_for(reader.readuntil(b"}"), 2)
        assert response.startswith(b"HTTP/1.1 200 OK\r\n") and b'"body":"ok"' in response
        writer.write(HEAD)  # kept alive: the next one is awaited the same way
        assert await first_bytes(reader, 2) == CONTINUE
        writer.close()

    run(test)


def test_a_chunked_body_is_awaited_the_same_way() -> None:
    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        assert await first_bytes(reader, 2) == CONTINUE
        writer.write(b"2\r\nok\r\n0\r\n\r\n")
        assert b'"body":"ok"' in await asyncio.wait_for(reader.readuntil(b"}"), 2)
        writer.close()

    run(test)


@pytest.mark.parametrize("raw", [
    HEAD + b"ok",  # the body came with the head: never a 100 after it started
    HEAD.replace(b"HTTP/1.1", b"HTTP/1.0") + b"ok",  # RFC 9110 §15.2: never to 1.0
    HEAD.replace(b"Content-Length: 2", b"Content-Length: 0"),  # no body to wait for
    HEAD.replace(b"100-continue", b"something-else") + b"ok",
])
def test_no_100_where_none_is_awaited(raw: bytes) -> None:
    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, raw, 0.5)
        assert status_of(response) == 200 and b" 100 " not in response

    run(test)


def test_no_100_to_http_1_0_even_before_the_body() -> None:
    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEAD.replace(b"HTTP/1.1", b"HTTP/1.0"))
        assert await first_bytes(reader) == b""
        writer.write(b"ok")
        assert status_of(await asyncio.wait_for(reader.read(), 2)) == 200
        writer.close()

    run(test)


def test_a_declared_body_over_the_limit_gets_413_at_once_and_no_100() -> None:
    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEAD.replace(b"Content-Length: 2", b"Content-Length: 1001"))
        response = await asyncio.wait_for(reader.read(), 2)  # then the server closes
        assert response.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
        assert b"connection: close" in response.lower() and b" 100 " not in response
        writer.close()

    run(test)


def refuse_unknown_paths(request: HTTPRequest, conn: HTTPConnection) -> bool:
    if request.path == "/e":
        return True
    conn.respond_json(404, {"error": "no route"}, [("x-refused", request.path)])
    return False


def test_a_request_the_admission_hook_refuses_gets_its_final_status_at_once() -> None:
    handled: list[str] = []

    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        handled.append(request.path)
        conn.respond(200, [], b"")

    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEAD.replace(b"/e", b"/nowhere"))
        response = await asyncio.wait_for(reader.read(), 2)  # the body unread: closed
        assert response.startswith(b"HTTP/1.1 404 Not Found\r\n")
        assert b"x-refused: /nowhere" in response and b"connection: close" in response
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEAD)  # admitted: the usual 100
        assert await first_bytes(reader, 2) == CONTINUE
        writer.close()
        assert handled == []  # the refused one never reached the handler

    run(test, handler=handler, admit=refuse_unknown_paths)


def test_an_admission_hook_that_raises_costs_a_500_and_the_connection() -> None:
    def admit(request: HTTPRequest, conn: HTTPConnection) -> bool:
        raise RuntimeError("bug")

    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, HEAD, 1)
        assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert b" 100 " not in response

    run(test, admit=admit)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sends_a_large_body_without_its_one_second_wait() -> None:
    """curl asks for a 100 before a body over 1 MiB and waits up to 1 s for it."""
    limits = dataclasses.replace(FAST, max_body_bytes=4 << 20, body_timeout=5)
    body = b"x" * (1200 << 10)

    async def test(h: Harness, port: int) -> None:
        started = time.monotonic()
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@-",
            "-H", "content-type: application/octet-stream", f"http://127.0.0.1:{port}/e",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        out, _ = await curl.communicate(body)
        assert out == b"200"
        assert time.monotonic() - started < 0.9  # not curl's 1 s wait for a 100

    run(test, limits=limits, admit=lambda request, conn: True)
