"""No provider key reaches a client or a log line, whatever an upstream sends.

One sweep over every way an upstream fails that the suite knows, each carrying the
keys of two configured providers (the one serving and another): in its status line,
header lines, chunk framing, trailers, events, error bodies, error types, content type,
in pieces. The gateway's loggers are captured at DEBUG, tracebacks included, and every
byte of every response is searched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.e2e.raw_upstream import (
    WIRES,
    Flood,
    RawUpstream,
    Step,
    Wire,
    chunk,
    head,
    whole,
)
from tests.e2e.stack import Stack
from tests.e2e.test_hostile_upstream import SETTINGS, post, providers_toml

# Distinctive, and shaped like real ones; the second provider's key is in every
# failure too, to show all configured keys are redacted, not only the serving one's.
KEY = "sk-proj-Qx7CanaryOpenAIv9Lk2Jd8Hs5Fp3Wm6Rt1Yb4Nc"
OTHER_KEY = "sk-ant-api03-Zr4CanaryAnthropicTg7Vu2Xe9Kw5Hm8Pq3Ld6"
KEYS = f"{KEY} and {OTHER_KEY}"
# Any piece of a key this long counts as a leak (the fragment rule of sseserver.redact).
PIECE = 12


def leaks(text: str) -> list[str]:
    """The pieces of either key found in ``text``."""
    return [key[at:at + PIECE] for key in (KEY, OTHER_KEY)
            for at in range(len(key) - PIECE + 1) if key[at:at + PIECE] in text]


def _error_json(message: str, kind: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "code": kind}})


def failures(wire: Wire) -> dict[str, list[Step]]:
    """Every failure mode, each a reply carrying both keys."""
    key = KEY.encode()
    keys = KEYS.encode()
    token = wire.start + wire.token("a")
    split = KEY[:20] + "\n" + KEY[20:] + " / " + OTHER_KEY[:25] + "\r\n" + OTHER_KEY[25:]
    return {
        "bad status line": [b"HTTP/1.1 2x0 " + keys + b"\r\n\r\n"],
        "bad header name": [b"HTTP/1.1 200 OK\r\n" + key + b" x: " + keys + b"\r\n\r\n"],
        "control character in a header": [b"HTTP/1.1 200 OK\r\nX-Echo: " + keys + b"\0\r\n\r\n"],
        "bad content-length": [b"HTTP/1.1 200 OK\r\nContent-Length: 1, " + keys + b"\r\n\r\n"],
        "bad transfer-encoding": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + key + b"\r\n\r\n"],
        "closed in the head": [b"HTTP/1.1 200 OK\r\nX-Echo: " + keys],
        "trickled head": [b"HTTP/1.1 200 OK\r\nX-Echo: " + keys, 2.0],
        "bad chunk size": [head(), token, keys + b"\r\n"],
        "chunk without its CRLF": [head(), token, b"5\r\nhello" + keys],
        "bad trailer": [head(), token, b"0\r\n" + keys + b"\r\n\r\n"],
        "error event": [head(), token, wire.error(KEY, f"Incorrect API key provided: {KEYS}")],
        "error before the first token": [head(), wire.start, wire.error(OTHER_KEY, KEYS)],
        "error with the keys split": [head(), token, wire.error("invalid_api_key", split)],
        "not json": [head(), token, chunk(b"data: {not json " + keys + b"\n\n")],
        "wrong type": [head(), token, wire.bad_index(KEY)],
        "idle after a comment": [head(), token, chunk(b": " + keys + b"\n\n"), 2.0],
        "event too large": [head(), token, Flood(chunk(b"data: " + keys * 1000 + b"\n"), 3)],
        "comment flood": [head(), token, Flood(chunk(b": " + keys * 9000 + b"\n"), 3)],
        "401 json": [whole("401 Unauthorized", "application/json",
                           _error_json(f"Incorrect API key provided: {KEYS}", "invalid_api_key"))],
        "502 html": [whole("502 Bad Gateway", "text/html", b"<p>upstream said " + keys)],
        "429 headers": [whole("429 Too Many Requests", "application/json", b"{}",
                              f"Retry-After: {KEY}", f"X-Should-Retry: {OTHER_KEY}")],
        "200 json": [whole("200 OK", "application/json", _error_json(KEYS, "insufficient_quota"))],
        "200 html": [whole("200 OK", "text/html", b"<h1>" + keys + b"</h1>")],
        "200 keyed content type": [whole("200 OK", KEY, b"{}")],
    }


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log line of the process, at DEBUG, formatted with tracebacks."""
    lines: list[str] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    root = logging.getLogger()
    handler, level = Collect(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lines
    root.setLevel(level)
    root.removeHandler(handler)


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_no_key_reaches_a_client_or_a_log(wire: Wire, log_lines: list[str]) -> None:
    leaked: list[str] = []
    with RawUpstream([]) as upstream, \
            Stack(SETTINGS, toml=providers_toml(upstream.url, KEY, OTHER_KEY)) as stack:
        for mode, reply in failures(wire).items():
            upstream.answer(reply)
            answer = post(stack, wire)
            told = answer.status != 200 or any(e.get("event") == "error"
                                               for e in answer.events)
            assert told, (mode, answer.body)  # the failure was met, and said
            raw = f"{answer.status} {answer.headers}".encode() + answer.body
            if leaks(raw.decode("latin-1")):
                leaked.append(mode)
    assert leaked == []
    assert any("stream_end" in line for line in log_lines)  # the logs were captured
    assert [line for line in log_lines if leaks(line)] == []


# The compatible endpoints shape errors their own way (and the non-streaming one
# answers them as a status): the same failures, through each.
COMPAT_REQUESTS = {
    "chat-completions-streamed": ("/v1/chat/completions", {"stream": True}),
    "messages-whole": ("/v1/messages", {"stream": False, "max_tokens": 64}),
}


@pytest.mark.parametrize("endpoint", COMPAT_REQUESTS)
@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_no_key_reaches_a_client_of_the_compatible_endpoints(
        wire: Wire, endpoint: str, log_lines: list[str]) -> None:
    path, fields = COMPAT_REQUESTS[endpoint]
    body = {"model": f"raw{wire.kind}/m", "messages": [{"role": "user", "content": "hi"}],
            **fields}
    leaked: list[str] = []
    with RawUpstream([]) as upstream, \
            Stack(SETTINGS, toml=providers_toml(upstream.url, KEY, OTHER_KEY)) as stack:
        for mode, reply in failures(wire).items():
            upstream.answer(reply)
            response = httpx.post(stack.url + path, json=body, timeout=15.0)
            assert response.status_code != 200 or b"error" in response.content, mode
            raw = f"{response.status_code} {response.headers}".encode() + response.content
            if leaks(raw.decode("latin-1")):
                leaked.append(mode)
    assert leaked == []
    assert any("stream_end" in line for line in log_lines)  # the logs were captured
    assert [line for line in log_lines if leaks(line)] == []
