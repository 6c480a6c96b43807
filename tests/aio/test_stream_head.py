"""A stream's head from its template (DirectOutput.open, start_spliced_stream) is the
head start_stream sends for the same headers, on real loopback connections: every
request form, extra and CORS headers, the connection's closing, a refused value."""

from __future__ import annotations

import re

import pytest

from sseserver.aio.http_server import HTTPConnection, HTTPRequest
from sseserver.output import DirectOutput, stream_head
from tests.aio.test_http_server import FAST, Harness, exchange, run

DATE = re.compile(rb"date: [^\r]*\r\n")


def handler(request: HTTPRequest, conn: HTTPConnection) -> None:
    extra = [("x-extra", request.headers.get("x-extra", "1"))]
    if request.query == "bad":  # a value a handler echoed, that would split the head
        extra = [("x-extra", "a\r\nx-injected: 1")]
    if request.headers.get("origin"):  # as the gateway sets its CORS headers
        conn.response_headers = [("access-control-allow-origin", request.headers["origin"])]
    if request.path == "/spliced":
        output = DirectOutput(conn, extra)
        output.open("w1.abc123", "text/event-stream", b"retry: 3000\n")
        output.finish([b"data: one\n\n"])
    else:
        writer = conn.start_stream(200, stream_head("w1.abc123", "text/event-stream", extra),
                                   b"retry: 3000\n")
        writer.close(b"data: one\n\n")


REQUESTS = [
    b"GET %b HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET %b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"GET %b HTTP/1.0\r\n\r\n",
    b"HEAD %b HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET %b HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n",
    b"GET %b HTTP/1.1\r\nHost: t\r\nX-Extra: caf\xe9 \t x\r\n\r\n",  # obs-text, a tab
    b"POST %b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab",  # answered before the body
    b"GET %b?bad HTTP/1.1\r\nHost: t\r\n\r\n",  # refused: a 500 instead
]


@pytest.mark.parametrize("request_bytes", REQUESTS)
def test_a_spliced_stream_head_is_the_head_start_stream_sends(request_bytes: bytes) -> None:
    async def test(h: Harness, port: int) -> None:
        for _ in range(2):  # the first makes the template, the second takes it
            spliced = await exchange(port, request_bytes % b"/spliced", read_timeout=0.5)
            general = await exchange(port, request_bytes % b"/general", read_timeout=0.5)
            assert DATE.sub(b"", spliced) == DATE.sub(b"", general)
            assert spliced.startswith(b"HTTP/1.")

    run(test, FAST, handler)
