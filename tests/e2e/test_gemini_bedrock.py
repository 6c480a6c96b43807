"""Gemini and Bedrock through the gateway: the fake provider speaks its wire format, and every
fake knob (fail, drop_after, stall_after, error_after, malformed_after, tool_call,
usage, thinking, ttfb_ms) comes out of /v1/stream as it does for OpenAI."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import connect_sse

from tests.e2e.stack import Stack, request_body

KEYS = {"gemini": "AIzaFakeGeminiKey0123456789abcdefghij",
        "bedrock": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYFAKESECRET"}
# what each provider answers a wrong key with
REFUSED = {"gemini": 401, "bedrock": 403}
TOML = f"""
[providers.gemini]
kind = "gemini"
base_url = "{{fake}}"
api_key = "{KEYS['gemini']}"

[providers.bedrock]
kind = "bedrock"
base_url = "{{fake}}"
region = "eu-west-3"
access_key_id = "AKIDFAKEEXAMPLE"
api_key = "{KEYS['bedrock']}"
"""
KINDS = ["gemini", "bedrock"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    settings = {"upstream.first_byte_timeout": 0.5, "upstream.idle_timeout": 0.3,
                "upstream.max_retries": 1, "upstream.backoff_initial": 0.01,
                "upstream.backoff_max": 0.02}
    with Stack(settings, toml=TOML) as s:
        yield s


def stream(stack: Stack, kind: str, script: dict[str, Any]) -> tuple[int, list[Any], Any]:
    body = request_body({**script, "require_key": KEYS[kind]}, provider=kind)
    with httpx.Client(timeout=10) as client, \
            connect_sse(client, "POST", stack.url + "/v1/stream", json=body) as source:
        if source.response.status_code != 200:
            source.response.read()
            return source.response.status_code, [], source.response.json()
        return 200, list(source.iter_sse()), None


def by_event(events: list[Any], name: str) -> list[Any]:
    return [orjson.loads(e.data) for e in events if e.event == name and e.data != "[DONE]"]


@pytest.mark.parametrize("kind", KINDS)
def test_text_usage_and_metadata(stack: Stack, kind: str) -> None:
    status, events, _ = stream(stack, kind, {"tokens": 3,
                                             "usage": {"input_tokens": 7, "output_tokens": 3}})
    assert status == 200
    assert by_event(events, "metadata")[0]["provider"] == kind
    assert "".join(d["content"] for d in by_event(events, "message")) == "tok0 tok1 tok2 "
    assert by_event(events, "usage") == [{"input_tokens": 7, "output_tokens": 3}]
    assert events[-1].data == "[DONE]"


@pytest.mark.parametrize("kind", KINDS)
def test_thinking_then_text(stack: Stack, kind: str) -> None:
    _, events, _ = stream(stack, kind, {"tokens": 1, "thinking": 2})
    assert "".join(d["content"] for d in by_event(events, "reasoning")) == "think0 think1 "
    names = [e.event for e in events]
    assert names.index("reasoning") < names.index("message")


@pytest.mark.parametrize("kind", KINDS)
def test_tool_calls(stack: Stack, kind: str) -> None:
    calls = [{"name": "get_weather", "arguments": '{"city": "Paris"}'},
             {"name": "get_time", "arguments": "{}"}]
    _, events, _ = stream(stack, kind, {"tokens": 1, "tool_call": calls})
    fragments = by_event(events, "tool_call")
    for index, call in enumerate(calls):
        mine = [f for f in fragments if f["index"] == index]
        assert mine[0]["name"] == call["name"] and mine[0]["id"]
        assert orjson.loads("".join(f["arguments"] for f in mine)) == \
            orjson.loads(call["arguments"])


@pytest.mark.parametrize("kind", KINDS)
def test_fail_is_retried_then_streams(stack: Stack, kind: str) -> None:
    status, events, _ = stream(stack, kind, {"tokens": 2, "fail": [503],
                                             "key": f"{kind}-retry-{time.monotonic()}"})
    assert status == 200 and events[-1].data == "[DONE]"


@pytest.mark.parametrize("kind", KINDS)
def test_fail_not_retryable_is_the_provider_status(stack: Stack, kind: str) -> None:
    status, _, error = stream(stack, kind, {"fail": [400, 400],
                                            "key": f"{kind}-400-{time.monotonic()}"})
    assert status == 400 and "scripted failure 400" in error["error"]["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_key_is_refused_and_never_shown(stack: Stack, kind: str) -> None:
    body = request_body({"require_key": "another-key"}, provider=kind)
    response = httpx.post(stack.url + "/v1/stream", json=body, timeout=10)
    # the gateway's own key was refused: the gateway's failure, not the client's
    assert response.status_code == 502
    assert str(REFUSED[kind]) in response.json()["error"]["message"]
    assert KEYS[kind] not in response.text


@pytest.mark.parametrize("kind", KINDS)
def test_error_after_is_an_error_event(stack: Stack, kind: str) -> None:
    _, events, _ = stream(stack, kind, {"tokens": 3, "error_after": 1})
    error = orjson.loads(events[-2].data)
    assert events[-2].event == "error" and error["retryable"] is True
    assert events[-1].data == "[DONE]"


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_after_is_a_clean_error(stack: Stack, kind: str) -> None:
    _, events, _ = stream(stack, kind, {"tokens": 3, "malformed_after": 1})
    assert events[-2].event == "error" and events[-1].data == "[DONE]"
    assert len(by_event(events, "message")) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_drop_after_is_an_error_event(stack: Stack, kind: str) -> None:
    _, events, _ = stream(stack, kind, {"tokens": 5, "drop_after": 2})
    assert len(by_event(events, "message")) == 2
    assert events[-2].event == "error" and events[-1].data == "[DONE]"


@pytest.mark.parametrize("kind", KINDS)
def test_stall_after_meets_the_idle_timeout(stack: Stack, kind: str) -> None:
    _, events, _ = stream(stack, kind, {"tokens": 5, "stall_after": 2})
    error = orjson.loads(events[-2].data)
    assert error["type"] == "upstream_timeout"


@pytest.mark.parametrize("kind", KINDS)
def test_ttfb_ms_past_the_first_byte_timeout_is_a_504(stack: Stack, kind: str) -> None:
    status, _, error = stream(stack, kind, {"tokens": 1, "ttfb_ms": 2000})
    assert status == 504 and error["error"]["type"] == "upstream_timeout"


@pytest.mark.parametrize("kind", KINDS)
def test_ttfb_ms_below_the_timeout_streams(stack: Stack, kind: str) -> None:
    started = time.monotonic()
    status, events, _ = stream(stack, kind, {"tokens": 1, "ttfb_ms": 100})
    assert status == 200 and events[-1].data == "[DONE]"
    assert time.monotonic() - started >= 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_the_compatible_endpoints_reach_the_provider(stack: Stack, kind: str) -> None:
    script = "#fake " + orjson.dumps({"tokens": 2, "require_key": KEYS[kind]}).decode()
    body = {"model": f"{kind}/some-model", "stream": True, "temperature": 0.2,
            "messages": [{"role": "system", "content": "Be terse."},
                         {"role": "user", "content": script}],
            "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}]}
    with httpx.Client(timeout=10) as client, connect_sse(
            client, "POST", stack.url + "/v1/chat/completions", json=body) as source:
        assert source.response.status_code == 200
        chunks = [orjson.loads(e.data) for e in source.iter_sse() if e.data != "[DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in chunks if c.get("choices"))
    assert text == "tok0 tok1 "
    message = {"model": f"{kind}/some-model", "max_tokens": 50,
               "messages": [{"role": "user", "content": script}]}
    answer = httpx.post(stack.url + "/v1/messages", json=message, timeout=10).json()
    assert answer["content"] == [{"type": "text", "text": "tok0 tok1 "}]
