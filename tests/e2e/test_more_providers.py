"""The provider kinds beyond the first two, end to end: client -> sseserver -> the fake
provider speaking each kind's own wire format, every knob of the fake's script.

Each kind is one provider of one stack, picked by the request's ``provider`` field; the
checks are the same for every kind, so each proves its adapter maps its wire format's
text, reasoning, tool calls, usage, failures and faults to the same stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import connect_sse

from tests.e2e.stack import Stack, request_body

KINDS = ["responses", "azure", "azure-v1", "ollama"]
TOML = """
[routing.fallbacks]
resilient = ["responses/gpt-4.1-mini", "azure/gpt-4o-mini", "ollama/llama3.2"]

[providers.responses]
kind = "openai-responses"
base_url = "{fake}/v1"
api_key = "sk-responses-test-key"

[providers.azure]
kind = "azure-openai"
base_url = "{fake}"
api_key = "azure-test-key-0123456789"
deployment = "my-gpt"

[providers.azure-v1]
kind = "azure-openai"
base_url = "{fake}/openai/v1"
api_key = "azure-test-key-0123456789"

[providers.ollama]
kind = "ollama"
base_url = "{fake}"

[providers.ollama-cloud]
kind = "ollama"
base_url = "{fake}"
api_key = "ollama-cloud-test-key-0123"
"""
KEYS = {"responses": "sk-responses-test-key", "azure": "azure-test-key-0123456789",
        "azure-v1": "azure-test-key-0123456789", "ollama-cloud": "ollama-cloud-test-key-0123"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 5.0, "upstream.backoff_initial": 0.01,
                "upstream.backoff_max": 0.02, "upstream.idle_timeout": 0.5},
               provider_kind="openai", toml=TOML) as s:
        yield s


def stream(stack: Stack, provider: str, script: dict[str, Any]
           ) -> tuple[int, list[tuple[str, Any]]]:
    """The status, and each event as (name, decoded data), [DONE] as ("end", None)."""
    body = request_body(script, provider=provider)
    with httpx.Client(timeout=10) as client, \
            connect_sse(client, "POST", stack.url + "/v1/stream", json=body) as source:
        if source.response.status_code != 200:
            source.response.read()
            return source.response.status_code, [("json", source.response.json())]
        events = [("end", None) if sse.data == "[DONE]" else (sse.event, orjson.loads(sse.data))
                  for sse in source.iter_sse()]
        return 200, events


def text_of(events: list[tuple[str, Any]], name: str = "message") -> str:
    return "".join(data["content"] for event, data in events if event == name)


@pytest.mark.parametrize("provider", KINDS)
def test_text_and_usage(stack: Stack, provider: str) -> None:
    status, events = stream(stack, provider, {"tokens": 3})
    assert status == 200
    assert events[0] == ("metadata", {**events[0][1], "provider": provider})
    assert text_of(events) == "tok0 tok1 tok2 "
    assert any(e == "usage" and d["output_tokens"] == 3 for e, d in events)
    assert events[-1] == ("end", None)


@pytest.mark.parametrize("provider", KINDS)
def test_usage_knob(stack: Stack, provider: str) -> None:
    _, events = stream(stack, provider, {"tokens": 1,
                                         "usage": {"input_tokens": 7, "output_tokens": 9}})
    assert ("usage", {"input_tokens": 7, "output_tokens": 9}) in events


@pytest.mark.parametrize("provider", KINDS)
def test_thinking_then_text(stack: Stack, provider: str) -> None:
    _, events = stream(stack, provider, {"tokens": 2, "thinking": 2})
    assert text_of(events, "reasoning") == "think0 think1 "
    names = [event for event, _ in events]
    assert names.index("reasoning") < names.index("message")
    assert text_of(events) == "tok0 tok1 "


@pytest.mark.parametrize("provider", KINDS)
def test_tool_calls(stack: Stack, provider: str) -> None:
    _, events = stream(stack, provider, {"tokens": 1, "tool_call": [
        {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"name": "get_time", "arguments": ""}]})
    calls: dict[int, dict[str, Any]] = {}
    for event, data in events:
        if event == "tool_call":
            call = calls.setdefault(data["index"], {"arguments": ""})
            call.update({k: v for k in ("id", "name") if (v := data.get(k))})
            call["arguments"] += data["arguments"]
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert orjson.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert orjson.loads(calls[1]["arguments"]) == {}
    assert all(call.get("id") for call in calls.values())
    assert events[-1] == ("end", None)


@pytest.mark.parametrize("provider", KINDS)
def test_fail_is_retried_before_the_commit(stack: Stack, provider: str) -> None:
    status, events = stream(stack, provider, {"tokens": 2, "fail": [503, 429],
                                              "key": f"retry-{provider}"})
    assert status == 200 and text_of(events) == "tok0 tok1 "


@pytest.mark.parametrize("provider", KINDS)
def test_fail_not_retryable_is_a_json_error(stack: Stack, provider: str) -> None:
    status, events = stream(stack, provider, {"fail": [400], "key": f"bad-{provider}"})
    assert status == 400
    assert "scripted failure 400" in events[0][1]["error"]["message"]


@pytest.mark.parametrize("provider", KINDS)
def test_error_after_the_commit_is_an_error_event(stack: Stack, provider: str) -> None:
    status, events = stream(stack, provider, {"tokens": 4, "error_after": 2})
    assert status == 200 and text_of(events) == "tok0 tok1 "
    name, error = events[-2]
    assert name == "error" and error["retryable"] is True, events
    assert events[-1] == ("end", None)


@pytest.mark.parametrize("provider", KINDS)
def test_error_before_the_commit_is_retried_then_reported(stack: Stack,
                                                          provider: str) -> None:
    stack.reset_fake()
    status, events = stream(stack, provider, {"tokens": 4, "error_after": 0})
    assert status == 200  # the head went out with the provider's 200
    assert text_of(events) == "" and events[-2][0] == "error"
    assert stack.stats()["requests"] == 3  # the first attempt and two retries


@pytest.mark.parametrize("provider", KINDS)
def test_malformed_after_ends_with_a_provider_error(stack: Stack, provider: str) -> None:
    _, events = stream(stack, provider, {"tokens": 4, "malformed_after": 2})
    assert text_of(events) == "tok0 tok1 "
    assert events[-2][0] == "error" and events[-2][1]["type"] == "provider_error"
    assert events[-2][1]["retryable"] is False


@pytest.mark.parametrize("provider", KINDS)
def test_drop_after_is_an_error_not_a_clean_end(stack: Stack, provider: str) -> None:
    _, events = stream(stack, provider, {"tokens": 4, "drop_after": 2})
    assert text_of(events) == "tok0 tok1 "
    assert events[-2][0] == "error" and events[-1] == ("end", None)


@pytest.mark.parametrize("provider", KINDS)
def test_stall_after_meets_the_idle_limit(stack: Stack, provider: str) -> None:
    _, events = stream(stack, provider, {"tokens": 4, "stall_after": 2})
    assert text_of(events) == "tok0 tok1 "
    assert events[-2][0] == "error" and events[-2][1]["type"] == "upstream_timeout"


@pytest.mark.parametrize("provider", sorted(KEYS))
def test_the_key_goes_in_its_header(stack: Stack, provider: str) -> None:
    status, events = stream(stack, provider, {"tokens": 1, "require_key": KEYS[provider]})
    assert status == 200 and text_of(events) == "tok0 "
    status, _ = stream(stack, provider, {"tokens": 1, "require_key": "another-key"})
    assert status == 502  # the provider refused the gateway's own key


@pytest.mark.parametrize("provider", KINDS)
def test_ttfb_delays_the_first_token(stack: Stack, provider: str) -> None:
    started = time.monotonic()
    _, events = stream(stack, provider, {"tokens": 1, "ttfb_ms": 150})
    assert time.monotonic() - started >= 0.14
    assert text_of(events) == "tok0 "


def test_a_fallback_chain_across_three_kinds(stack: Stack) -> None:
    """Responses refuses (400: the next target at once), Azure is down (503 on each of
    its three attempts), Ollama serves: the client sees one clean stream."""
    stack.reset_fake()
    body = request_body({"tokens": 2, "fail": [400, 503, 503, 503], "key": "chain"},
                        model="resilient")
    with httpx.Client(timeout=10) as client, \
            connect_sse(client, "POST", stack.url + "/v1/stream", json=body) as source:
        events = [(sse.event, sse.data) for sse in source.iter_sse()]
    assert orjson.loads(events[0][1])["provider"] == "ollama"
    assert orjson.loads(events[0][1])["model"] == "llama3.2"
    assert "".join(orjson.loads(data)["content"] for event, data in events
                   if event == "message" and data != "[DONE]") == "tok0 tok1 "
    assert stack.stats()["requests"] == 5


@pytest.mark.parametrize("provider", KINDS)
def test_the_openai_sdk_through_the_compatible_endpoint(stack: Stack, provider: str) -> None:
    """A Chat Completions client served by each kind: its request translated, the
    answer as chat.completion.chunk objects."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0)
    script = {"tokens": 2, "tool_call": {"name": "f", "arguments": '{"a": 1}'}}
    chunks = list(client.chat.completions.create(
        model=f"{provider}/some-model", stream=True, stream_options={"include_usage": True},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "#fake " + orjson.dumps(script).decode()}]))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == "tok0 tok1 "
    calls = [call for d in deltas for call in d.tool_calls or ()]
    assert calls[0].function.name == "f"
    arguments = "".join(call.function.arguments or "" for call in calls)
    assert orjson.loads(arguments) == {"a": 1}  # Ollama's object comes back compact
    assert chunks[-1].usage is not None
