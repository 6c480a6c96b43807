"""Anthropic Messages: golden streams, the request we build, error mapping."""

from __future__ import annotations

import orjson
import pytest

from sseserver.config import ProviderSettings
from sseserver.errors import ProviderError, RequestError
from sseserver.events import (
    ErrorEvent,
    Finish,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sseserver.providers.anthropic import AnthropicAdapter, AnthropicProvider
from sseserver.schema import parse_generation_request
from tests.providers.golden import run_fixture

PROVIDER = AnthropicProvider(ProviderSettings("anthropic", "anthropic", "http://h:1", "ak-1"))


@pytest.mark.parametrize("split", [None, 1, 13])
def test_text_stream(split: int | None) -> None:
    adapter = AnthropicAdapter()
    assert run_fixture("anthropic_text.sse", adapter, split) == [
        TextDelta("Hello"), TextDelta("!"), Finish("stop"), Usage(25, 15)]
    assert adapter.finished


def test_tool_use_stream() -> None:
    events = run_fixture("anthropic_tool_use.sse", AnthropicAdapter())
    assert events == [
        ToolCallDelta(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"location": "San Fra'),
        ToolCallDelta(0, None, None, 'ncisco, CA"}'),
        Finish("tool_calls"), Usage(0, 89)]


def test_thinking_stream() -> None:
    adapter = AnthropicAdapter()
    assert run_fixture("anthropic_thinking.sse", adapter) == [
        ReasoningDelta("Let me work through this step by step..."),
        ReasoningSignature("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds...")]
    assert not adapter.finished


def test_redacted_thinking_block_is_its_data() -> None:
    adapter = AnthropicAdapter()
    start = b'{"type":"content_block_start","index":0,"content_block":' \
        b'{"type":"redacted_thinking","data":"EqkE=="}}'
    assert adapter.feed("content_block_start", start.decode()) == [RedactedReasoning("EqkE==")]


@pytest.mark.parametrize(("delta", "finish"), [
    ('{"stop_reason":"stop_sequence","stop_sequence":"END"}', Finish("stop", "END")),
    ('{"stop_reason":"stop_sequence","stop_sequence":null}', Finish("stop", "")),
    ('{"stop_reason":"end_turn","stop_sequence":null}', Finish("stop")),
])
def test_stop_sequence_is_kept(delta: str, finish: Finish) -> None:
    data = '{"type":"message_delta","delta":' + delta + ',"usage":{"output_tokens":3}}'
    assert AnthropicAdapter().feed("message_delta", data) == [finish]


def test_signature_of_the_wrong_type_is_a_provider_error() -> None:
    data = '{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta",' \
        '"signature":7}}'
    with pytest.raises(ProviderError):
        AnthropicAdapter().feed("content_block_delta", data)


def test_overloaded_mid_stream() -> None:
    [error] = run_fixture("anthropic_overloaded.sse", AnthropicAdapter())
    assert error == ErrorEvent("overloaded_error", "Overloaded", True, 529)


def test_unknown_events_and_bad_data() -> None:
    adapter = AnthropicAdapter()
    assert adapter.feed("brand_new_event", '{"type":"brand_new_event"}') == []
    assert adapter.feed("ping", '{"type": "ping"}') == []
    # no event line: the JSON type decides
    assert adapter.feed("message", '{"type":"message_stop"}') == [Usage(0, 0)]
    with pytest.raises(ProviderError):
        adapter.feed("content_block_delta", "{oops")


def test_request_body_and_headers() -> None:
    request = parse_generation_request(orjson.dumps({
        "model": "x", "system": "one", "temperature": 1.5,
        "messages": [{"role": "system", "content": "two"}, {"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}))
    upstream = PROVIDER.build_request(request, "claude-sonnet-4")
    assert upstream.url == "http://h:1/v1/messages"
    headers = dict(upstream.headers)
    assert headers["x-api-key"] == "ak-1" and headers["anthropic-version"] == "2023-06-01"
    body = orjson.loads(upstream.body)
    assert body["system"] == "one\n\ntwo"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["max_tokens"] == 4096 and body["temperature"] == 1.0
    assert body["tools"][0]["name"] == "f" and "input_schema" in body["tools"][0]
    v1 = AnthropicProvider(ProviderSettings("a", "anthropic", "http://h:1/v1", None))
    assert v1.build_request(request, "m").url == "http://h:1/v1/messages"


def test_tool_role_is_refused() -> None:
    request = parse_generation_request(orjson.dumps({
        "model": "m", "messages": [{"role": "tool", "content": "x"}]}))
    with pytest.raises(RequestError, match="not supported"):
        PROVIDER.build_request(request, "m")


def test_error_mapping() -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                     "message": "Overloaded ak-1"}})
    error = PROVIDER.map_error(529, {}, body)
    assert error.retryable and error.status == 529
    assert "Overloaded" in str(error) and "ak-1" not in str(error)
    assert not PROVIDER.map_error(401, {}, b"{}").retryable


def _stream(adapter: AnthropicAdapter, *payloads: dict[str, object]) -> list[object]:
    return [event for payload in payloads
            for event in adapter.feed(str(payload["type"]), orjson.dumps(payload).decode())]


def test_a_tool_call_without_arguments_gets_an_empty_object() -> None:
    """an_thinking_noarg_tool: tool_use with input {} and one partial_json ""."""
    adapter = AnthropicAdapter()
    tool = {"type": "tool_use", "id": "toolu_1", "name": "fixed_version", "input": {}}
    assert _stream(
        adapter,
        {"type": "content_block_start", "index": 1, "content_block": tool},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_stop", "index": 1},
    ) == [ToolCallDelta(0, "toolu_1", "fixed_version", ""), ToolCallDelta(0, None, None, "{}")]
    # an input sent whole in the start stands, as in the SDK's accumulation
    whole = {**tool, "input": {"a": [1, "é"]}}
    assert _stream(AnthropicAdapter(),
                   {"type": "content_block_start", "index": 0, "content_block": whole},
                   {"type": "content_block_stop", "index": 0})[1] == \
        ToolCallDelta(0, None, None, '{"a":[1,"é"]}')
    # streamed input needs nothing more at the stop
    assert _stream(AnthropicAdapter(),
                   {"type": "content_block_start", "index": 0, "content_block": tool},
                   {"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": "{}"}},
                   {"type": "content_block_stop", "index": 0})[1:] == [
        ToolCallDelta(0, None, None, "{}")]


@pytest.mark.parametrize("event", [
    {"type": "content_block_start", "index": 0, "content_block": "tool_use"},
    {"type": "content_block_start", "index": "0", "content_block": {"type": "text"}},
    {"type": "content_block_start", "index": 0,
     "content_block": {"type": "tool_use", "id": 1, "name": "f"}},
    {"type": "content_block_start", "index": 0,
     "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": []}},
    {"type": "content_block_delta", "index": 0, "delta": ["text_delta"]},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}},
    {"type": "content_block_delta", "index": 0,
     "delta": {"type": "text_delta", "text": {"evil": [1, 2]}}},
    {"type": "content_block_delta", "index": 1.5,
     "delta": {"type": "input_json_delta", "partial_json": "{"}},
    {"type": "content_block_stop", "index": [0]},
    {"type": "message_start", "message": {"usage": {"input_tokens": "12"}}},
    {"type": "message_start", "message": []},
    {"type": "message_delta", "delta": {"stop_reason": 1}, "usage": {"output_tokens": 2}},
    {"type": "message_delta", "delta": {}, "usage": {"output_tokens": True}},
    {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 2**60}},
])
def test_a_field_of_the_wrong_type_is_a_provider_error(event: dict[str, object]) -> None:
    with pytest.raises(ProviderError) as raised:
        _stream(AnthropicAdapter(), event)
    assert not raised.value.retryable
    assert raised.value.args[0].startswith("provider event: ")


def test_mid_stream_error_types_are_tokens_and_messages_strings() -> None:
    [event] = _stream(AnthropicAdapter(), {"type": "error", "error": {
        "type": "overloaded_error\n" + "x" * 100, "message": {"m": 1}}})
    assert event == ErrorEvent("overloaded_error_" + "x" * 47, "overloaded_error_" + "x" * 47,
                               retryable=False)
    [event] = _stream(AnthropicAdapter(), {"type": "error", "error": "Overloaded"})
    assert event == ErrorEvent("api_error", "api_error", True, 500)


def test_a_lone_surrogate_becomes_the_replacement_character() -> None:
    adapter = AnthropicAdapter()
    data = '{"type":"content_block_delta","index":0,' \
           '"delta":{"type":"text_delta","text":"x\\udfff"}}'
    assert adapter.feed("content_block_delta", data) == [TextDelta("x\ufffd")]


def test_errors_never_quote_the_upstream_bytes() -> None:
    with pytest.raises(ProviderError) as raised:
        AnthropicAdapter().feed("content_block_delta", '{"sk-ant-secret": oops')
    assert "sk-ant" not in str(raised.value)
