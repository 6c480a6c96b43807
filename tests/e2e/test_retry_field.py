"""Every stream response starts with the ``retry:`` field line, fresh or resumed, so a
client cut before its first event, or resuming past it, still knows when to come back;
and that line makes no empty event in the decoders clients use."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import sseclient
from httpx_sse import connect_sse

from tests.e2e.stack import Stack, request_body

RETRY_MS = 1234


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 0.2, "streams.retry_ms": RETRY_MS}) as s:
        yield s


def first_body_bytes(stack: Stack, request: bytes, until: bytes) -> bytes:
    """The decoded start of a chunked response body, read until ``until`` shows."""
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        sock.settimeout(5)
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + 5
        while until not in data and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    decoded = b""
    while body and b"\r\n" in body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        decoded += body[:size]
        body = body[size + 2:]
    return decoded


def post(script: dict[str, Any], **fields: Any) -> bytes:
    body = orjson.dumps(request_body(script, **fields))
    return (b"POST /v1/stream HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%b"
            % (len(body), body))


def test_a_client_cut_before_the_first_token_was_told_the_retry_delay(stack: Stack) -> None:
    """The provider thinks for 2 s; the client leaves at the first heartbeat."""
    body = first_body_bytes(stack, post({"tokens": 1, "ttfb_ms": 2000}), b": ping\n")
    assert body.startswith(b"retry: %d\n" % RETRY_MS), body
    assert b"id: " not in body


def start_resumable(stack: Stack, script: dict[str, Any]) -> str:
    started = httpx.post(stack.url + "/v1/streams", json=request_body(script))
    assert started.status_code == 201
    url = str(started.json()["url"])
    stream_id = url.rsplit("/", 1)[1]
    for _ in range(300):
        resumable = stack.server.gateway.store.get(stream_id)  # type: ignore[union-attr]
        if resumable is not None and resumable.output.log.finished:
            return url
        time.sleep(0.01)
    raise AssertionError("stream did not end")


@pytest.mark.parametrize("how", ["header", "query"])
def test_a_resumed_stream_starts_with_the_retry_field(stack: Stack, how: str) -> None:
    url = start_resumable(stack, {"tokens": 4})
    target = url + ("?lastEventId=3" if how == "query" else "")
    header = b"Last-Event-ID: 3\r\n" if how == "header" else b""
    request = b"GET %b HTTP/1.1\r\nHost: t\r\n%b\r\n" % (target.encode(), header)
    body = first_body_bytes(stack, request, b"[DONE]")
    assert body.startswith(b"retry: %d\nid: 4\n" % RETRY_MS), body
    assert body.count(b"retry: ") == 1
    with httpx.Client(timeout=10) as client, connect_sse(
            client, "GET", stack.url + url, headers={"last-event-id": "3"}) as source:
        events = list(source.iter_sse())
    assert [e.id for e in events] == ["4", "5", "6", "7"]
    assert all(e.data for e in events), "no empty events"
    assert events[0].retry == RETRY_MS


def test_decoders_see_no_empty_event_from_the_retry_line(stack: Stack) -> None:
    """A fresh stream that heartbeats before its first token, read by httpx-sse and
    sseclient-py: the first event carries the delay, none is empty."""
    body = request_body({"tokens": 2, "ttfb_ms": 500})
    with httpx.Client(timeout=10) as client, \
            connect_sse(client, "POST", stack.url + "/v1/stream", json=body) as source:
        events = list(source.iter_sse())
    assert [e.event for e in events] == ["metadata", "message", "message", "usage", "message"]
    assert all(e.data for e in events) and events[0].retry == RETRY_MS
    with httpx.Client(timeout=10) as client, \
            client.stream("POST", stack.url + "/v1/stream", json=body) as response:
        py = list(sseclient.SSEClient(response.iter_bytes()).events())
    assert [e.event for e in py] == ["metadata", "message", "message", "usage", "message"]
    assert all(e.data for e in py) and int(py[0].retry) == RETRY_MS
