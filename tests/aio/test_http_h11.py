"""What a client and the rest of the server see of h11 reading requests: nothing of
h11 itself (no h11 state held by a streaming connection, no h11 message on the wire),
and the bytes not read yet for whoever takes a socket over."""

from __future__ import annotations

import asyncio

import h11
import orjson

from sseserver.aio.http_server import HTTPConnection, HTTPRequest
from tests.aio.test_http_server import FAST, Harness, echo_handler, exchange, run, status_of

SECRET = b"sk-live-0123456789"


def test_unconsumed_gives_the_pipelined_bytes_and_transport_the_socket() -> None:
    seen: list[tuple[bytes, bool]] = []

    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        seen.append((conn.unconsumed(), conn.transport is not None
                     and conn.transport.get_extra_info("peername") is not None))
        echo_handler(request, conn)

    first = b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"
    second = b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
    third = b"GET /c HTTP/1.1\r\nHo"  # a head still arriving

    async def test(h: Harness, port: int) -> None:
        response = await exchange(port, first + second + third, 0.5)
        assert response.count(b"HTTP/1.1 200 OK") == 2

    run(test, handler=handler)
    assert seen == [(second + third, True), (third, True)]


def test_unconsumed_is_empty_between_requests_and_holds_a_head_as_it_arrives() -> None:
    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
        await reader.readuntil(b'"body":""}')
        conn = h.connections[0]
        assert conn.unconsumed() == b""
        writer.write(b"GET /b HTTP/1.1\r\n")
        for _ in range(100):  # bounded: the server reads it within a few turns
            if conn.unconsumed():
                break
            await asyncio.sleep(0.01)
        assert conn.unconsumed() == b"GET /b HTTP/1.1\r\n"
        writer.close()

    run(test)


def test_a_streaming_connection_holds_no_h11_state() -> None:
    async def test(h: Harness, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /hang HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        await reader.readuntil(b"\r\n\r\n")
        conn = h.connections[0]
        assert not any(isinstance(item, h11.Connection) for item in reachable(conn))
        writer.close()

    run(test)


def reachable(root: object, limit: int = 5000) -> list[object]:
    """Objects reachable from ``root`` through slots and dicts, within the server's
    own objects (loops, transports and modules are not walked)."""
    seen: dict[int, object] = {}
    todo = [root]
    while todo and len(seen) < limit:
        item = todo.pop()
        if id(item) in seen or isinstance(item, (asyncio.AbstractEventLoop, type)):
            continue
        seen[id(item)] = item
        todo.extend(_children(item))
    return list(seen.values())


def _children(item: object) -> list[object]:
    if isinstance(item, (list, tuple, set)):
        return list(item)
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    module = type(item).__module__
    if not (module.startswith("sseserver") or module.startswith("h11")):
        return []
    names = [name for cls in type(item).__mro__ for name in getattr(cls, "__slots__", ())]
    return [getattr(item, name, None) for name in names] + list(vars(item).values()
                                                                 if hasattr(item, "__dict__")
                                                                 else [])


def test_a_refused_request_never_shows_its_bytes() -> None:
    """h11's messages quote what they refuse; the client and the log get the rule."""
    bad = [
        b"GET /?token=" + SECRET + b" HTTP/1.1 x\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nAuthorization : Bearer " + SECRET + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Key: " + SECRET + b"\x00\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + SECRET + b"\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx" + SECRET,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        + SECRET + b"\r\n\r\n",
    ]
    messages: list[str] = []

    async def test(h: Harness, port: int) -> None:
        for data in bad:
            response = await exchange(port, data, 1)
            assert status_of(response) == 400, response
            assert SECRET not in response
            body = orjson.loads(response.split(b"\r\n\r\n", 1)[1])
            messages.append(body["error"]["message"])

    run(test)
    assert all("sk-live" not in message for message in messages)
    assert "query not shown" in messages[0] and "header line 2" in messages[1]
    assert "malformed chunk size line" in messages[3]
    assert messages[4].endswith("chunk data not followed by CRLF")
    assert messages[5].endswith("malformed trailer line")


def test_statuses_as_before() -> None:
    cases = [
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
    ]

    async def test(h: Harness, port: int) -> None:
        for data, status in cases:
            response = await exchange(port, data, 1)
            assert status_of(response) == status, (data[:40], response[:80])
            assert b"connection: close" in response

    run(test, limits=FAST)
