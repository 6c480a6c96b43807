"""The Responses adapter and request, sans-IO; and the fake's Responses stream as
openai-python reads it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from sseserver.config import ProviderSettings
from sseserver.errors import ProviderError, RequestError
from sseserver.events import ErrorEvent, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from sseserver.providers.openai_responses import OpenAIResponsesProvider, ResponsesAdapter
from sseserver.providers.registry import make_provider
from sseserver.providers.responses_request import responses_body
from sseserver.schema import GenerationRequest, Message
from tests.e2e.stack import Stack

openai = pytest.importorskip("openai")


def event(kind: str, **fields: Any) -> tuple[str, str]:
    return kind, orjson.dumps({"type": kind, **fields}).decode()


def feed(adapter: ResponsesAdapter, *events: tuple[str, str]) -> list[Any]:
    return [e for name, data in events for e in adapter.feed(name, data)]


def test_text_reasoning_and_usage() -> None:
    adapter = ResponsesAdapter()
    got = feed(adapter,
               event("response.reasoning_summary_part.added", summary_index=0),
               event("response.reasoning_summary_text.delta", delta="One."),
               event("response.reasoning_summary_part.added", summary_index=1),
               event("response.reasoning_summary_text.delta", delta="Two."),
               event("response.output_text.delta", delta="Hi"),
               event("response.refusal.delta", delta=" no"),
               event("response.completed", response={"usage": {
                   "input_tokens": 5, "output_tokens": 7}}))
    assert got == [ReasoningDelta("One."), ReasoningDelta("\n\nTwo."), TextDelta("Hi"),
                   TextDelta(" no"), Finish("stop"), Usage(5, 7)]
    assert adapter.finished


def test_tool_calls_keep_a_stable_index_per_item() -> None:
    adapter = ResponsesAdapter()
    got = feed(adapter,
               event("response.output_item.added", output_index=3, item={
                   "type": "function_call", "id": "fc_a", "call_id": "call_a", "name": "f",
                   "arguments": ""}),
               event("response.output_item.added", output_index=4, item={
                   "type": "function_call", "id": "fc_b", "call_id": "call_b", "name": "g",
                   "arguments": ""}),
               event("response.function_call_arguments.delta", item_id="fc_b", delta='{"x"'),
               event("response.function_call_arguments.delta", item_id="fc_a", delta="{}"),
               event("response.function_call_arguments.delta", item_id="fc_b", delta=":1}"),
               event("response.function_call_arguments.done", item_id="fc_b",
                     arguments='{"x":1}'),
               event("response.completed", response={}))
    assert got == [ToolCallDelta(0, "call_a", "f", ""), ToolCallDelta(1, "call_b", "g", ""),
                   ToolCallDelta(1, None, None, '{"x"'), ToolCallDelta(0, None, None, "{}"),
                   ToolCallDelta(1, None, None, ":1}"), Finish("tool_calls")]


def test_a_call_with_no_argument_deltas_gets_its_whole_arguments() -> None:
    adapter = ResponsesAdapter()
    item = {"type": "function_call", "id": "fc_a", "call_id": "c", "name": "f"}
    got = feed(adapter, event("response.output_item.added", item=item),
               event("response.output_item.done", item={**item, "arguments": '{"a":2}'}),
               event("response.output_item.added", item={**item, "id": "fc_b"}),
               event("response.completed", response={}))
    assert got[1] == ToolCallDelta(0, None, None, '{"a":2}')
    assert ToolCallDelta(1, None, None, "{}") in got


@pytest.mark.parametrize(("terminal", "expected"), [
    (event("response.incomplete", response={"incomplete_details": {
        "reason": "max_output_tokens"}, "usage": {"input_tokens": 1, "output_tokens": 2}}),
     [Finish("length"), Usage(1, 2)]),
    (event("response.incomplete", response={"incomplete_details": {
        "reason": "content_filter"}}),
     [ErrorEvent("content_filter", "the provider stopped the reply early (content_filter)",
                 retryable=False)]),
    (event("response.failed", response={"error": {"code": "server_error",
                                                  "message": "boom"}}),
     [ErrorEvent("server_error", "boom", retryable=True, status=500)]),
    (event("error", code="rate_limit_exceeded", message="slow", param=None),
     [ErrorEvent("rate_limit_exceeded", "slow", retryable=True, status=429)]),
    (event("error", error={"type": "insufficient_quota", "code": "insufficient_quota",
                           "message": "pay"}),
     [ErrorEvent("insufficient_quota", "pay", retryable=False, status=429)]),
])
def test_terminal_events(terminal: tuple[str, str], expected: list[Any]) -> None:
    assert feed(ResponsesAdapter(), terminal) == expected


def test_a_cut_reply_keeps_its_usage_for_the_error() -> None:
    adapter = ResponsesAdapter()
    feed(adapter, event("response.incomplete", response={
        "incomplete_details": {"reason": "content_filter"},
        "usage": {"input_tokens": 3, "output_tokens": 4}}))
    assert adapter.usage_so_far() == Usage(3, 4) and not adapter.finished


@pytest.mark.parametrize("bad", [
    event("response.output_text.delta", delta=5),
    event("response.reasoning_summary_text.delta", delta=["x"]),
    event("response.output_item.added", item="x"),
    event("response.output_item.added", item={"type": "function_call", "name": 1}),
    event("response.function_call_arguments.delta", item_id="a", delta={}),
    event("response.completed", response={"usage": {"input_tokens": -1}}),
    event("response.completed", response=[]),
    ("response.output_text.delta", "[1]"),
    ("response.output_text.delta", "{nope"),
])
def test_wrong_types_are_provider_errors(bad: tuple[str, str]) -> None:
    with pytest.raises(ProviderError):
        feed(ResponsesAdapter(), bad)


def test_unknown_events_and_done_are_harmless() -> None:
    adapter = ResponsesAdapter()
    assert feed(adapter, event("response.web_search_call.searching", item_id="x"),
                event("response.created", response={"id": "r"})) == []
    assert adapter.feed_message("[DONE]") == [] and adapter.finished


def test_request_body() -> None:
    provider = make_provider(ProviderSettings("r", "openai-responses", "http://h/v1", "sk-k"))
    assert isinstance(provider, OpenAIResponsesProvider)
    request = GenerationRequest(
        model="x", system="Be brief.", max_tokens=50, temperature=0.5,
        tools=({"name": "f", "description": "d", "parameters": {"type": "object"}},),
        messages=(Message("developer", "Use tools."), Message("user", "Hi"),
                  Message("assistant", "Hello"), Message("user", [
                      {"type": "text", "text": "look"},
                      {"type": "image_url", "image_url": {"url": "data:x"}}])))
    upstream = provider.build_request(request, "gpt-test")
    assert upstream.url == "http://h/v1/responses"
    assert ("authorization", "Bearer sk-k") in upstream.headers
    assert "sk-k" not in repr(upstream) and "sk-k" not in upstream.url
    body = orjson.loads(upstream.body)
    assert body == {
        "model": "gpt-test", "temperature": 0.5, "stream": True,
        "instructions": "Be brief.\n\nUse tools.", "max_output_tokens": 50,
        "input": [{"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello"},
                  {"role": "user", "content": [
                      {"type": "input_text", "text": "look"},
                      {"type": "input_image", "image_url": "data:x"}]}],
        "tools": [{"type": "function", "name": "f", "description": "d",
                   "parameters": {"type": "object"}}]}


def test_request_body_of_tool_turns_and_refusals() -> None:
    body = responses_body({"model": "m", "tool_choice": {"type": "function", "function": {
        "name": "f"}}, "reasoning_effort": "low", "messages": [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]})
    assert body["input"] == [
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]
    assert body["tool_choice"] == {"type": "function", "name": "f"}
    assert body["reasoning"] == {"effort": "low"}
    formats = [responses_body({"model": "m", "messages": [], "response_format": value})
               for value in ({"type": "json_object"}, {"type": "json_schema", "json_schema": {
                   "name": "n", "schema": {"type": "object"}, "strict": True}})]
    assert [f["text"]["format"] for f in formats] == [
        {"type": "json_object"},
        {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": True}]
    for bad in ({"model": "m", "messages": [], "seed": 1},
                {"model": "m", "messages": [], "n": 2},
                {"model": "m", "messages": [], "response_format": {"type": "json_schema"}},
                {"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "input_audio"}]}]}):
        with pytest.raises(RequestError):
            responses_body(bad)


# -- the fake's Responses stream, read by openai-python ---------------------------------

@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    with Stack() as stack:
        assert stack.fake is not None
        yield stack.fake.base_url


def sdk_final(fake_url: str, script: dict[str, Any]) -> Any:
    client = openai.OpenAI(api_key="sk-test", base_url=f"{fake_url}/v1", max_retries=0)
    with client.responses.stream(model="m", input=[{"role": "user", "content": "#fake " +
                                                    orjson.dumps(script).decode()}]) as stream:
        return stream.get_final_response()


def test_the_fake_stream_is_what_openai_python_reads(fake_url: str) -> None:
    final = sdk_final(fake_url, {"tokens": 2, "thinking": 2, "usage": {
        "input_tokens": 4, "output_tokens": 6}, "tool_call": {"name": "f",
                                                              "arguments": '{"a": 1}'}})
    assert final.output_text == "tok0 tok1 "
    reasoning, _message, call = final.output
    assert reasoning.summary[0].text == "think0 think1 "
    assert (call.name, call.arguments) == ("f", '{"a": 1}')
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 6)


def test_the_fake_fails_as_openai_python_expects(fake_url: str) -> None:
    with pytest.raises(openai.RateLimitError):
        sdk_final(fake_url, {"fail": [429], "key": "responses-sdk-429"})
    client = openai.OpenAI(api_key="sk-test", base_url=f"{fake_url}/v1", max_retries=0)
    script = "#fake " + orjson.dumps({"tokens": 3, "error_after": 1}).decode()
    with client.responses.stream(model="m", input=script) as stream:
        kinds = [e.type for e in stream]
    assert kinds[-2:] == ["error", "response.failed"]
