"""A request's target and Connection field as the server reads them: the shortcuts
for what most clients send (no query, "Connection: close") against the general
reading, over real loopback connections."""

from __future__ import annotations

import asyncio

import pytest

from sseserver.aio.http_server import HTTPConnection, HTTPRequest
from sseserver.core import request_checks
from tests.aio.test_http_server import FAST, Harness
from tests.conftest import run_async

TARGETS = ["/v1/stream", "/", "/a?", "/a?b=1", "/?x", "/a?b?c", "/a%3Fb", "*"]
CONNECTIONS = [None, "close", "Close", "CLOSE", "keep-alive", "close, upgrade",
               "Upgrade , CLOSE", "closed", "keep-alive,close", ""]


def read_requests(heads: list[bytes]) -> list[tuple[HTTPRequest, bool]]:
    """Each head sent on its own connection: the request the handler got, and whether
    the server would keep the connection alive after it."""
    seen: list[tuple[HTTPRequest, bool]] = []

    def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
        seen.append((request, conn._keep_alive))
        conn.respond(204, [], b"", close=True)

    async def main() -> None:
        harness = Harness(FAST, handler)
        port = await harness.start()
        try:
            for head in heads:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head)
                await asyncio.wait_for(reader.read(), 2.0)
                writer.close()
        finally:
            harness.server.close()

    run_async(main)
    return seen


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_targets_and_connection_options_read_as_the_general_reading(version: str) -> None:
    heads = []
    expected = []
    for target in TARGETS:
        for connection in CONNECTIONS:
            line = b"" if connection is None else b"Connection: %s\r\n" % connection.encode()
            heads.append(b"OPTIONS %s HTTP/%s\r\nHost: h\r\n%s\r\n"
                         % (target.encode(), version.encode(), line))
            path, _, query = target.partition("?")
            keep_alive = version == "1.1" and (
                connection is None or not request_checks.lists_close(connection.lower()))
            expected.append((path, query, keep_alive))
    got = [(request.path, request.query, keep_alive)
           for request, keep_alive in read_requests(heads)]
    assert got == expected
