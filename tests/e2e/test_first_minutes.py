"""What a newcomer meets first: a server with no provider, and /metrics after bad input."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.e2e.stack import Stack, request_body

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
    b"POST /v1/stream HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
]


def _send_and_read(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _metric(text: str, name: str) -> int:
    match = re.search(rf"^{name} (\d+)$", text, re.MULTILINE)
    assert match, name
    return int(match.group(1))


def test_requests_refused_before_routing_count_as_requests_too() -> None:
    with Stack() as stack:
        for data in MALFORMED:
            assert _send_and_read(stack.port, data).startswith(b"HTTP/1.1 4")
        text = httpx.get(stack.url + "/metrics", timeout=5).text
    requests = _metric(text, "sseserver_http_requests_total")
    errors = _metric(text, "sseserver_http_errors_total")
    refused = _metric(text, "sseserver_http_refused_total")
    assert errors <= requests
    assert (requests, errors, refused) == (len(MALFORMED) + 1, len(MALFORMED), len(MALFORMED))


def test_a_server_with_no_provider_warns_at_start_and_says_what_to_configure() -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SSESERVER_", "OPENAI_", "ANTHROPIC_"))}
    process = subprocess.Popen([sys.executable, "-m", "sseserver", "serve", "--port", "0"],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("no provider" in x for x in lines):
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
        [url] = [m.group(1) for x in lines if (m := re.search(r"listening on (\S+)", x))]
        [warning] = [x for x in lines if "no provider" in x]
        for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "--demo", "config file"):
            assert name in warning
        for path in ("/v1/stream", "/v1/streams"):
            answer = httpx.post(url + path, json=request_body({}), timeout=5)
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "60"
            message = answer.json()["error"]["message"]
            assert "OPENAI_API_KEY" in message and "--demo" in message
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


FALLBACK_TOML = """
[providers.first]
kind = "openai"
base_url = "{fake}/v1"

[providers.second]
kind = "openai"
base_url = "{fake}/v1"

[routing.fallbacks]
chain = ["first/model-a", "second/model-b"]
"""


def test_a_400_moves_on_to_the_next_fallback_target_once_and_is_never_retried() -> None:
    with Stack({"upstream.max_retries": 2, "upstream.backoff_initial": 0.01},
               toml=FALLBACK_TOML) as stack:
        body = {**request_body({"tokens": 1, "fail": [400], "key": "lacks-a-role"}),
                "model": "chain"}
        served = httpx.post(stack.url + "/v1/stream", json=body, timeout=10)
        assert served.status_code == 200
        assert b'"provider":"second","model":"model-b"' in served.content
        assert stack.stats()["requests"] == 2  # the 400 was not retried on "first"
        stack.reset_fake()
        body = {**request_body({"tokens": 1, "fail": [400] * 5, "key": "wrong-everywhere"}),
                "model": "chain"}
        refused = httpx.post(stack.url + "/v1/stream", json=body, timeout=10)
        assert refused.status_code == 400
        assert stack.stats()["requests"] == 2  # one attempt per target
