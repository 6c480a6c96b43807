"""`Expect: 100-continue` against the real gateway: a body it wants gets its 100 at
once, a request it refuses whatever the body gets the final status at once."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.e2e.stack import Stack, request_body

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack() as stack:
        yield stack


def awaiting_continue(stack: Stack, method: str, path: str, length: int = 10
                      ) -> tuple[socket.socket, bytes]:
    """Send a head that awaits 100 and no body; what the server answers at once."""
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=2)
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                 f"content-type: application/json\r\nContent-Length: {length}\r\n\r\n"
                 .encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return sock, answer


def read_to_close(sock: socket.socket, start: bytes) -> bytes:
    data = start
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", "/nowhere", b"404 Not Found"),
    ("POST", "/healthz", b"405 Method Not Allowed"),
    ("PUT", "/v1/stream", b"405 Method Not Allowed"),
])
def test_a_request_refused_whatever_its_body_gets_its_status_at_once(
        stack: Stack, method: str, path: str, status: bytes) -> None:
    sock, answer = awaiting_continue(stack, method, path)
    response = read_to_close(sock, answer)  # the body unread: the server closes
    assert response.startswith(b"HTTP/1.1 " + status + b"\r\n"), response[:80]
    assert b"connection: close" in response and b" 100 " not in response


@pytest.mark.parametrize("path", ["/v1/stream", "/v1/streams", "/v1/chat/completions",
                                  "/v1/messages", "/v1/chat"])
def test_no_room_for_a_stream_gets_503_at_once(stack: Stack, path: str) -> None:
    """Every route that starts a stream, the compatible ones too (they answered 100,
    then 503 once the body had come)."""
    gateway = stack.server.gateway  # type: ignore[union-attr]
    assert gateway is not None
    stack.run_sync(lambda: setattr(gateway, "draining", True))
    try:
        sock, answer = awaiting_continue(stack, "POST", path)
        response = read_to_close(sock, answer)
    finally:
        stack.run_sync(lambda: setattr(gateway, "draining", False))
    assert response.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"retry-after: 5" in response


def test_a_stream_request_gets_100_then_streams(stack: Stack) -> None:
    body = orjson.dumps(request_body({"tokens": 2}))
    sock, answer = awaiting_continue(stack, "POST", "/v1/stream", len(body))
    assert answer == CONTINUE
    sock.sendall(body)
    response = b""
    while b"[DONE]" not in response:
        chunk = sock.recv(65536)
        assert chunk, response
        response += chunk
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    sock.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_posts_a_body_over_1_mb_without_waiting_a_second(stack: Stack) -> None:
    """curl sends Expect: 100-continue before a body over 1 MiB, and waited 1 s."""
    body = request_body({"tokens": 1})
    body["messages"].insert(0, {"role": "system", "content": "x" * (1200 << 10)})
    started = time.monotonic()
    result = subprocess.run(
        ["curl", "-sS", "-N", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@-",
         "-H", "content-type: application/json", stack.url + "/v1/stream"],
        input=orjson.dumps(body), capture_output=True, timeout=10, check=True)
    assert result.stdout == b"200"
    assert time.monotonic() - started < 0.9  # not curl's 1 s wait for the 100
