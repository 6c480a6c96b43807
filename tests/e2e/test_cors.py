"""CORS against a real server: hostile preflights get a clear answer and no traceback,
and every response that depends on Origin says so."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.stack import Stack

APP = "http://app.example"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack({"server.cors_origins": (APP,)}) as s:
        yield s


def raw(stack: Stack, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        sock.settimeout(5)
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.mark.parametrize("names", [b"x-a\x01b", b"content-type, x\x1fy", b"x\x7fz"])
def test_a_preflight_asking_for_a_control_byte_is_refused_without_a_traceback(
        stack: Stack, names: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answer = raw(stack, b"OPTIONS /v1/stream HTTP/1.1\r\nHost: t\r\nOrigin: " +
                 APP.encode() + b"\r\nAccess-Control-Request-Method: POST\r\n"
                 b"Access-Control-Request-Headers: " + names + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"is not a header name" in answer
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"


def test_vary_origin_on_every_response_once_origins_are_configured(stack: Stack) -> None:
    for headers in ({"origin": APP}, {"origin": "http://evil.example"}, {}):
        response = httpx.get(stack.url + "/healthz", headers=headers)
        assert "origin" in response.headers.get("vary", "").lower(), headers
    preflight = httpx.options(stack.url + "/v1/stream", headers={
        "origin": APP, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization"})
    assert preflight.status_code == 204
    assert preflight.headers["vary"] == "origin"
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    # credentials are not allowed unless configured
    assert "access-control-allow-credentials" not in preflight.headers


def test_with_credentials_authorization_is_not_reflected_unless_listed() -> None:
    with Stack({"server.cors_origins": (APP,), "server.cors_allow_credentials": True}) as s:
        preflight = httpx.options(s.url + "/v1/stream", headers={
            "origin": APP, "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, cookie, x-custom"})
        assert preflight.headers["access-control-allow-credentials"] == "true"
        allowed = preflight.headers["access-control-allow-headers"].split(", ")
        assert "x-custom" in allowed
        assert "authorization" not in allowed and "cookie" not in allowed


@pytest.mark.parametrize("request_head", [
    # declared too large: refused before the body is read
    b"POST /v1/stream HTTP/1.1\r\nHost: t\r\nOrigin: http://app.example\r\n"
    b"Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n",
    # too large as sent: refused while the body is read
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nOrigin: http://app.example\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n800\r\n" + b"x" * 2048,
])
def test_a_body_refused_by_the_connection_carries_the_cors_headers(
        request_head: bytes) -> None:
    """A page posting a body over the limit saw a network error, not the 413: the
    connection's own refusals had no CORS headers, which the page needs to read it."""
    with Stack({"server.cors_origins": (APP,), "limits.max_body_bytes": 1024}) as small:
        head = raw(small, request_head)
    assert head.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), head[:80]
    assert b"\r\naccess-control-allow-origin: http://app.example\r\n" in head
    assert b"\r\nvary: origin\r\n" in head
