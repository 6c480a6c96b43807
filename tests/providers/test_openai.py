"""OpenAI Chat Completions: golden streams, the request we build, error mapping."""

from __future__ import annotations

import orjson
import pytest

from sseserver.config import ProviderSettings
from sseserver.errors import ProviderError, RequestError
from sseserver.events import ErrorEvent, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from sseserver.providers.openai import OpenAIAdapter, OpenAIProvider
from sseserver.schema import parse_generation_request
from tests.providers.golden import run_fixture

PROVIDER = OpenAIProvider(ProviderSettings("openai", "openai", "http://h:1/v1", "sk-secret"))


@pytest.mark.parametrize("split", [None, 1, 7, 64])
def test_text_stream(split: int | None) -> None:
    adapter = OpenAIAdapter()
    assert run_fixture("openai_text.sse", adapter, split) == [
        TextDelta("Hello"), TextDelta(" there!"), Finish("stop")]
    assert adapter.finished


def test_text_with_usage() -> None:
    assert run_fixture("openai_text_usage.sse", OpenAIAdapter())[-2:] == [
        Finish("stop"), Usage(9, 3)]


def test_tool_call_stream() -> None:
    events = run_fixture("openai_tool_call.sse", OpenAIAdapter())
    assert events == [
        ToolCallDelta(0, "call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"'), ToolCallDelta(0, None, None, 'city":"'),
        ToolCallDelta(0, None, None, 'New York City"}'),
        Finish("tool_calls"), Usage(44, 16)]
    joined = "".join(e.arguments for e in events if isinstance(e, ToolCallDelta))
    assert orjson.loads(joined) == {"city": "New York City"}


def test_refusal_is_text() -> None:
    assert run_fixture("openai_refusal.sse", OpenAIAdapter()) == [
        TextDelta("I'm"), TextDelta(" sorry"), Finish("stop")]


def test_mid_stream_error() -> None:
    events = run_fixture("openai_midstream_error.sse", OpenAIAdapter())
    assert events[0] == TextDelta("Hi")
    assert isinstance(events[1], ErrorEvent)
    assert events[1].type == "server_error" and events[1].retryable


def test_reasoning_fields_of_compatible_servers() -> None:
    adapter = OpenAIAdapter()
    data = '{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}'
    assert adapter.feed("message", data) == [ReasoningDelta("hmm")]


def test_odd_chunks() -> None:
    adapter = OpenAIAdapter()
    assert adapter.feed("message", '{"choices":[]}') == []
    assert adapter.feed("message", '{"choices":[{"index":1,"delta":{"content":"x"}}]}') == []
    assert adapter.feed("message", '{"choices":[{"index":0,"delta":{"content":""}}],'
                                   '"unknown":1}') == []
    with pytest.raises(ProviderError, match="not valid JSON"):
        adapter.feed("message", "{not json")
    with pytest.raises(ProviderError, match="not a JSON object"):
        adapter.feed("message", "[1]")


def test_request_body_and_headers() -> None:
    request = parse_generation_request(orjson.dumps({
        "model": "ignored", "messages": [{"role": "user", "content": "hi"}],
        "system": "be brief", "max_tokens": 5, "temperature": 0.2,
        "tools": [{"name": "f", "description": "d", "parameters": {"type": "object"}}]}))
    upstream = PROVIDER.build_request(request, "gpt-4o-mini")
    assert upstream.url == "http://h:1/v1/chat/completions"
    assert ("authorization", "Bearer sk-secret") in upstream.headers
    body = orjson.loads(upstream.body)
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 5 and body["temperature"] == 0.2
    assert body["tools"] == [{"type": "function", "function": {
        "name": "f", "description": "d", "parameters": {"type": "object"}}}]


def test_bad_tools_are_refused() -> None:
    request = parse_generation_request(orjson.dumps({
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"x": 1}]}))
    with pytest.raises(RequestError):
        PROVIDER.build_request(request, "m")


@pytest.mark.parametrize(("status", "headers", "retryable", "after"), [
    (400, {}, False, None), (401, {}, False, None), (404, {}, False, None),
    (408, {}, True, None), (409, {}, True, None), (429, {"retry-after": "2"}, True, 2.0),
    (429, {"retry-after-ms": "150", "retry-after": "9"}, True, 0.15),
    (429, {"retry-after": "1.5"}, True, 1.5), (429, {"retry-after": "soon"}, True, None),
    (500, {}, True, None), (503, {"x-should-retry": "false"}, False, None),
    (400, {"x-should-retry": "true"}, True, None), (529, {}, True, None),
])
def test_error_mapping(status: int, headers: dict[str, str], retryable: bool,
                       after: float | None) -> None:
    body = orjson.dumps({"error": {"message": "nope", "type": "x"}})
    error = PROVIDER.map_error(status, headers, body)
    assert error.status == status
    assert error.retryable is retryable
    assert error.retry_after == after
    assert "nope" in str(error)


def test_error_messages_never_carry_the_key_and_stay_short() -> None:
    body = orjson.dumps({"error": {"message": "Incorrect API key provided: sk-secret. " * 20}})
    error = PROVIDER.map_error(401, {}, body)
    assert "sk-secret" not in str(error)
    assert len(str(error)) < 300
    assert "<html>" in str(PROVIDER.map_error(502, {}, b"<html>bad gateway</html>"))


def test_feed_message_gives_the_per_token_chunk_as_bare_text() -> None:
    adapter = OpenAIAdapter()
    plain = '{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],' \
            '"usage":null}'
    assert adapter.feed_message(plain) == "Hi"
    assert adapter.feed("message", plain) == [TextDelta("Hi")]
    # anything more than a plain delta comes back as events, the same as feed() gives
    for data, events in [
        ('{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}',
         [TextDelta("a"), Finish("stop")]),
        ('{"choices":[{"index":0,"delta":{"role":"assistant","content":"b"}}]}',
         [TextDelta("b")]),
        ('{"choices":[{"index":0,"delta":{"content":""}}]}', []),
        ('{"choices":[{"index":1,"delta":{"content":"other choice"}}]}', []),
        ('{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}', [Usage(3, 4)]),
        ('{"choices":[{"index":0,"delta":{"content":"c"}}],'
         '"usage":{"prompt_tokens":1,"completion_tokens":1}}', [TextDelta("c"), Usage(1, 1)]),
    ]:
        assert OpenAIAdapter().feed_message(data) == events, data
        assert OpenAIAdapter().feed("message", data) == events, data
    assert adapter.feed_message("[DONE]") == [] and adapter.finished


@pytest.mark.parametrize("data", [
    '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":"x","function":{}}]}}]}',
    '{"choices":{"0":{"delta":{"content":"not a list"}}}}',
    '{"choices":[{"index":0,"delta":["content"]}]}',
    '{"choices":[],"usage":{"prompt_tokens":"3","completion_tokens":4}}',
    '{"choices":[{"index":0.0,"delta":{"content":"a"}}]}',
    '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":"f"}]}}]}',
    '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1.5}]}}]}',
    '{"choices":[{"index":0,"delta":{"content":{"evil":[1,2]}}}]}',
    '{"choices":[{"index":0,"delta":{"content":7}}]}',
    '{"choices":[{"index":0,"delta":{},"finish_reason":["stop"]}]}',
])
def test_a_field_of_the_wrong_type_is_a_provider_error(data: str) -> None:
    with pytest.raises(ProviderError) as raised:
        OpenAIAdapter().feed_message(data)
    assert not raised.value.retryable
    assert raised.value.args[0].startswith("provider event: ")


def test_errors_never_quote_the_upstream_bytes() -> None:
    for data in ['{"key": "sk-secret-123", oops', '["sk-secret-123"]',
                 '{"choices":[{"index":0,"delta":{"content":{"k":"sk-secret-123"}}}]}']:
        with pytest.raises(ProviderError) as raised:
            OpenAIAdapter().feed_message(data)
        assert "sk-secret" not in str(raised.value)


def test_mid_stream_error_types_are_tokens_and_messages_strings() -> None:
    def error_of(error: object) -> ErrorEvent:
        [event] = OpenAIAdapter().feed_message(orjson.dumps({"error": error}).decode())
        assert isinstance(event, ErrorEvent)
        return event
    assert error_of({"type": {"nested": 1}, "message": ["x"]}) == ErrorEvent(
        "provider_error", "An error occurred during streaming", False)
    assert error_of({"type": "server_error\r\nx-injected: 1" + "z" * 500}).type == \
        "server_error_x-injected:_1" + "z" * 37  # clipped at 64 first
    assert error_of({"type": "\x00\x01", "message": "m"}).type == "provider_error"
    assert error_of("plain text error") == ErrorEvent("provider_error", "plain text error",
                                                       False)
    assert error_of({"type": "server_error", "message": "boom"}).retryable


def test_content_parts_of_mistral_reasoning_models() -> None:
    adapter = OpenAIAdapter()
    def delta(content: object) -> list[object]:
        data = orjson.dumps({"choices": [{"index": 0, "delta": {"content": content}}]})
        result = adapter.feed_message(data.decode())
        return [TextDelta(result)] if isinstance(result, str) else result
    # the shapes of oc_mistral_content_parts: nested thinking parts, an empty one
    assert delta([{"type": "thinking", "thinking": [{"type": "text", "text": "Okay"}]}]) \
        == [ReasoningDelta("Okay")]
    assert delta([{"type": "thinking", "thinking": []}]) == []
    assert delta([{"type": "thinking", "thinking": "flat"}, {"type": "text", "text": "Hi"},
                  {"type": "image_url", "image_url": "u"}]) == [
        ReasoningDelta("flat"), TextDelta("Hi")]
    assert delta("To") == [TextDelta("To")]
    for bad in ([1], [{"type": "text", "text": 2}], [{"type": "thinking", "thinking": 3}],
                [{"type": "thinking", "thinking": ["x"]}]):
        with pytest.raises(ProviderError):
            delta(bad)


def test_a_tool_call_without_arguments_gets_an_empty_object() -> None:
    adapter = OpenAIAdapter()
    first = '{"choices":[{"index":0,"delta":{"tool_calls":[' \
            '{"index":0,"id":"c0","function":{"name":"now","arguments":""}},' \
            '{"index":1,"id":"c1","function":{"name":"add","arguments":"{\\"a\\":1}"}}]}}]}'
    assert adapter.feed_message(first) == [ToolCallDelta(0, "c0", "now", ""),
                                           ToolCallDelta(1, "c1", "add", '{"a":1}')]
    assert adapter.feed_message('{"choices":[{"index":0,"delta":{},'
                                '"finish_reason":"tool_calls"}]}') == [
        ToolCallDelta(0, None, None, "{}"), Finish("tool_calls")]
    assert adapter.feed_message("[DONE]") == []
    # a stream that ends with no finish_reason completes them at [DONE]
    adapter = OpenAIAdapter()
    adapter.feed_message('{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,'
                         '"id":"c","function":{"name":"now"}}]}}]}')
    assert adapter.feed_message("[DONE]") == [ToolCallDelta(0, None, None, "{}")]


def test_a_lone_surrogate_becomes_the_replacement_character() -> None:
    adapter = OpenAIAdapter()
    data = '{"choices":[{"index":0,"delta":{"content":"a\\ud800b\\udc00"}}]}'
    assert adapter.feed_message(data) == "a\ufffdb\ufffd"
    pair = '{"choices":[{"index":0,"delta":{"content":"\\ud83d\\ude00"}}]}'
    assert adapter.feed_message(pair) == "\U0001f600"
    with pytest.raises(ProviderError, match="not valid JSON"):
        adapter.feed_message('{"content":"\\ud800", oops}')
