"""Provider events of the wrong shape, end to end, from a raw-socket upstream.

The upstream here is a plain socket server answering chosen bytes (not the fake
provider), each event in a read of its own, in both wire formats.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import orjson
import pytest
from httpx_sse import connect_sse

from tests.e2e.stack import Stack

PAUSE = 0.02  # between two events: each arrives in a read of its own
ACCEPT_POLL = 0.05  # how soon the accepting thread notices it should stop


class RawUpstream:
    """Answers every request with 200 and ``events``, one chunk each, then closes."""

    events: ClassVar[list[bytes]] = []

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(ACCEPT_POLL)
        self.port = self.listener.getsockname()[1]
        self.requests = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                body += conn.recv(65536)
            self.requests += 1
            with contextlib.suppress(OSError):  # the gateway hung up once the stream ended
                self._send(conn)

    def _send(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        for event in self.events:
            time.sleep(PAUSE)
            conn.sendall(b"%x\r\n%b\r\n" % (len(event), event))
        conn.sendall(b"0\r\n\r\n")

    def close(self) -> None:
        # Closed under a thread blocked in accept(), a listening socket lives on, and a
        # later test's server on a reused port would meet this one's answers.
        self._stopping.set()
        self._thread.join(5)
        self.listener.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    server = RawUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack(upstream: RawUpstream) -> Iterator[Stack]:
    toml = f"""
[providers.rawoa]
kind = "openai"
base_url = "http://127.0.0.1:{upstream.port}/v1"

[providers.rawan]
kind = "anthropic"
base_url = "http://127.0.0.1:{upstream.port}"
"""
    with Stack({"upstream.max_retries": 2, "upstream.backoff_initial": 0.01}, toml=toml) as s:
        yield s


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return b"data: %b\n\n" % orjson.dumps({"id": "c", "choices": [choice]})


def named(payload: dict[str, Any]) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (payload["type"].encode(), orjson.dumps(payload))


def relay(stack: Stack, upstream: RawUpstream, model: str, events: list[bytes]
          ) -> list[tuple[str, Any]]:
    upstream.events = events
    upstream.requests = 0
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(timeout=10) as client, \
            connect_sse(client, "POST", stack.url + "/v1/stream", json=body) as source:
        assert source.response.status_code == 200
        return [(sse.event, sse.data if sse.data == "[DONE]" else orjson.loads(sse.data))
                for sse in source.iter_sse()]


TEXT = chunk({"content": "Hi"})
DONE = b"data: [DONE]\n\n"


@pytest.mark.parametrize("bad", [
    chunk({"tool_calls": [{"index": "x", "function": {"arguments": "{}"}}]}),
    chunk({"content": {"evil": [1, 2]}}),
    b'data: {"choices": {"0": {"delta": {}}}}\n\n',
], ids=["tool-index-x", "content-object", "choices-object"])
def test_openai_a_malformed_event_ends_the_stream_after_what_came_before(
        stack: Stack, upstream: RawUpstream, bad: bytes) -> None:
    events = relay(stack, upstream, "rawoa/m", [TEXT, bad, TEXT, DONE])
    assert [name for name, _ in events] == ["metadata", "message", "error", "message"]
    assert events[1][1] == {"content": "Hi"}
    error = events[2][1]
    assert error["type"] == "provider_error" and error["retryable"] is False
    assert events[-1][1] == "[DONE]"
    assert upstream.requests == 1  # the same bytes again would not help


def test_anthropic_a_malformed_event_ends_the_stream_after_what_came_before(
        stack: Stack, upstream: RawUpstream) -> None:
    text = named({"type": "content_block_delta", "index": 0,
                  "delta": {"type": "text_delta", "text": "Hi"}})
    bad = named({"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": {"evil": [1, 2]}}})
    events = relay(stack, upstream, "rawan/m", [
        named({"type": "message_start", "message": {"usage": {"input_tokens": 1}}}),
        text, bad, text])
    # the usage known so far goes out before the error, as for any stream cut short
    assert [name for name, _ in events] == ["metadata", "message", "usage", "error", "message"]
    assert events[1][1] == {"content": "Hi"}
    assert events[3][1]["type"] == "provider_error" and events[3][1]["retryable"] is False
    assert upstream.requests == 1


def test_openai_content_parts_and_a_lone_surrogate(stack: Stack, upstream: RawUpstream
                                                   ) -> None:
    thinking = chunk({"content": [{"type": "thinking",
                                   "thinking": [{"type": "text", "text": "Okay"}]}]})
    surrogate = b'data: {"choices":[{"index":0,"delta":{"content":"a\\ud800b"}}]}\n\n'
    events = relay(stack, upstream, "rawoa/m", [thinking, surrogate, TEXT,
                                                chunk({}, "stop"), DONE])
    assert events[1:] == [("reasoning", {"content": "Okay"}), ("message", {"content": "a\ufffdb"}),
                          ("message", {"content": "Hi"}), ("message", "[DONE]")]


def test_anthropic_a_tool_call_without_arguments_ends_with_an_empty_object(
        stack: Stack, upstream: RawUpstream) -> None:
    events = relay(stack, upstream, "rawan/m", [
        named({"type": "message_start", "message": {"usage": {"input_tokens": 5}}}),
        named({"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "fixed_version", "input": {}}}),
        named({"type": "content_block_delta", "index": 0,
               "delta": {"type": "input_json_delta", "partial_json": ""}}),
        named({"type": "content_block_stop", "index": 0}),
        named({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
               "usage": {"output_tokens": 7}}),
        named({"type": "message_stop"})])
    calls = [data for name, data in events if name == "tool_call"]
    assert calls == [{"index": 0, "id": "toolu_1", "name": "fixed_version", "arguments": ""},
                     {"index": 0, "id": None, "name": None, "arguments": "{}"}]
    assert orjson.loads("".join(call["arguments"] for call in calls)) == {}
