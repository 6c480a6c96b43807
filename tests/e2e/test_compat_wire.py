"""The compatible endpoints on the wire: framing, heartbeats, stream ids, the commit
point, cancel on disconnect, the 400 for a field another wire format cannot take, and
/v1/models. Raw HTTP, as the SDK decoders see it."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.stack import Stack

TOML = """
[routing]
default_provider = "openai"
[routing.aliases]
fast = "openai/gpt-4o-mini"
[routing.fallbacks]
smart = ["anthropic/claude-x", "openai/gpt-4o"]
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 0.1, "upstream.backoff_initial": 0.01,
                "upstream.backoff_max": 0.02}, toml=TOML) as s:
        yield s


def chat(script: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "stream": True, **fields,
            "messages": [{"role": "user", "content": "#fake " + json.dumps(script)}]}


def messages(script: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 50, "stream": True, **fields,
            "messages": [{"role": "user", "content": "#fake " + json.dumps(script)}]}


def post(stack: Stack, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(stack.url + path, json=body, timeout=10)


def test_openai_stream_framing_with_heartbeats_before_the_first_token(stack: Stack) -> None:
    response = post(stack, "/v1/chat/completions",
                    chat({"tokens": 2, "ttfb_ms": 350}, model="anthropic/claude-x"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-stream-id"]
    body = response.text
    assert body.startswith(": ping\n")  # the head and heartbeats went out while waiting
    lines = [line for line in body.split("\n") if line and line != ": ping"]
    assert all(line.startswith("data: ") for line in lines)  # no event:, id: or retry:
    assert lines[-1] == "data: [DONE]" and body.endswith("data: [DONE]\n\n")
    chunks = [orjson.loads(line[6:]) for line in lines[:-1]]
    assert {c["id"] for c in chunks} == {"chatcmpl-" + response.headers["x-stream-id"]}
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""}, {"content": "tok0 "}, {"content": "tok1 "}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_anthropic_stream_framing_with_ping_heartbeats(stack: Stack) -> None:
    response = post(stack, "/v1/messages", messages({"tokens": 2, "ttfb_ms": 350}))
    assert response.status_code == 200 and response.headers["x-stream-id"]
    blocks = [b for b in response.text.split("\n\n") if b]
    assert blocks[0] == 'event: ping\ndata: {"type":"ping"}'
    names = []
    for block in blocks:
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: ")
        assert orjson.loads(data[6:])["type"] == event[7:]
        names.append(event[7:])
    assert [n for n in names if n != "ping"] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]


def test_retries_before_the_first_token_are_invisible(stack: Stack) -> None:
    response = post(stack, "/v1/chat/completions",
                    chat({"tokens": 2, "fail": [503], "key": "compat-retry"}))
    assert response.status_code == 200
    assert "tok0 " in response.text and '"error"' not in response.text


def test_unmapped_field_passes_to_its_own_format_and_is_refused_by_the_other(
        stack: Stack) -> None:
    same = post(stack, "/v1/chat/completions", chat({"tokens": 1}, seed=7, logprobs=False))
    assert same.status_code == 200
    other = post(stack, "/v1/chat/completions", chat({"tokens": 1}, seed=7,
                                                     model="anthropic/claude-x"))
    assert other.status_code == 400
    error = other.json()["error"]
    assert "'seed'" in error["message"] and error["type"] == "invalid_request_error"
    refused = post(stack, "/v1/messages", messages({"tokens": 1}, top_k=5))  # to openai
    assert refused.status_code == 400
    assert refused.json()["type"] == "error" and "'top_k'" in refused.json()["error"]["message"]


def test_a_fallback_chain_serves_a_field_on_the_target_that_takes_it(stack: Stack) -> None:
    # "smart" tries Anthropic first, which cannot take logit_bias: the OpenAI target serves
    response = post(stack, "/v1/chat/completions",
                    chat({"tokens": 1}, model="smart", logit_bias={"1": 1}))
    assert response.status_code == 200 and '"model":"gpt-4o"' in response.text


def test_n_other_than_one_is_a_clear_400(stack: Stack) -> None:
    response = post(stack, "/v1/chat/completions", chat({}, n=3))
    assert response.status_code == 400 and "'n' must be 1" in response.json()["error"]["message"]


def test_errors_before_the_stream_take_each_api_shape(stack: Stack) -> None:
    unlimited = post(stack, "/v1/messages", {**messages({}), "max_tokens": None})
    assert unlimited.status_code == 400
    assert unlimited.json() == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "'max_tokens' is required"}}
    limited = post(stack, "/v1/messages", messages({"fail": [429] * 3, "key": "compat-429"},
                                                   model="anthropic/claude-x"))
    assert limited.status_code == 429 and "retry-after" in limited.headers
    assert limited.json()["error"]["type"] == "rate_limit_error"
    bad_json = httpx.post(stack.url + "/v1/chat/completions", content=b"{", timeout=5)
    assert bad_json.status_code == 400
    assert set(bad_json.json()["error"]) == {"message", "type", "param", "code"}


def cancelled_after(stack: Stack, path: str, body: dict[str, Any]) -> dict[str, int]:
    stack.reset_fake()
    payload = orjson.dumps(body)
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as sock:
        sock.sendall(b"POST %b HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%b" % (path.encode(), len(payload), payload))
        stats, _ = stack.wait_for(lambda s: s["active"] == 1, timeout=5)
        assert stats["active"] == 1
    stats, _ = stack.wait_for(lambda s: s["cancelled"] == 1, timeout=5)
    return stats


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_cancels_the_upstream(stack: Stack, stream: bool) -> None:
    slow = {"tokens": 500, "rate": 20}
    assert cancelled_after(stack, "/v1/chat/completions",
                           chat(slow, stream=stream))["cancelled"] == 1
    assert cancelled_after(stack, "/v1/messages",
                           messages(slow, stream=stream))["cancelled"] == 1


def test_backpressure_holds_the_upstream_of_a_client_that_does_not_read(stack: Stack) -> None:
    stack.reset_fake()
    payload = orjson.dumps(chat({"tokens": 200_000, "text": None}))
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                     b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload))
        readings = [stack.stats()["tokens_sent"]]
        deadline = time.monotonic() + 10  # generous: the machine is shared
        while time.monotonic() < deadline and (len(readings) < 3 or readings[-1] != readings[-2]):
            time.sleep(0.3)
            readings.append(stack.stats()["tokens_sent"])
    # the fake stopped sending (paused by the full buffers), long before its end
    assert readings[-1] == readings[-2] and readings[-1] < 200_000


def test_models_lists_what_routing_serves(stack: Stack) -> None:
    listed = httpx.get(stack.url + "/v1/models", timeout=5).json()
    assert listed["object"] == "list"
    assert {(m["id"], m["owned_by"]) for m in listed["data"]} == {
        ("fast", "openai"), ("smart", "sseserver"), ("openai/gpt-4o-mini", "openai"),
        ("anthropic/claude-x", "anthropic"), ("openai/gpt-4o", "openai")}
    assert all(m["object"] == "model" for m in listed["data"])
    anthropic_shape = httpx.get(stack.url + "/v1/models", timeout=5,
                                headers={"anthropic-version": "2023-06-01"}).json()
    assert anthropic_shape["has_more"] is False
    assert {m["id"] for m in anthropic_shape["data"]} == {m["id"] for m in listed["data"]}
