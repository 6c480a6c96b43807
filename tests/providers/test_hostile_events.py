"""Any JSON value in any position of a real event shape: the adapters give events of
the documented types, or a ProviderError (not retryable, never quoting the bytes).

The shapes are those of the wire references and of the recorded streams (Azure's
filter results, DeepSeek's reasoning_content, Mistral's content parts, Groq's error
event, Anthropic's tool and thinking blocks).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sseserver.errors import ProviderError
from sseserver.events import (
    ErrorEvent,
    Finish,
    NormalizedEvent,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sseserver.formats.sse import SSEFormatter
from sseserver.providers.anthropic import AnthropicAdapter
from sseserver.providers.openai import OpenAIAdapter
from sseserver.providers.shapes import loads_after_error

SECRET = "sk-proj-SECRET0123456789"
TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
DELETE = object()  # a mutation that removes the key instead

_CHUNK_HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
               "model": "m", "system_fingerprint": "fp"}
OPENAI_STREAM: list[Any] = [
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "",
                                                      "refusal": None},
                                 "logprobs": None, "finish_reason": None}], "usage": None},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": "Hello"},
                                 "logprobs": None, "finish_reason": None}], "usage": None},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"reasoning_content": "hmm"},
                                 "finish_reason": None}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"reasoning": "so", "channel": "a"}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": [
        {"type": "thinking", "thinking": [{"type": "text", "text": "Okay"}]},
        {"type": "text", "text": "Hi"}]}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"refusal": "I'm sorry"}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": None, "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}},
        {"index": 1, "id": "call_2", "type": "function",
         "function": {"name": "now", "arguments": ""}}]}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "{\"city\":\"Paris\"}"}}]}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": "x"},
                                 "content_filter_results": {"hate": {"filtered": False}}}],
     "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {**_CHUNK_HEAD, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3,
                                             "total_tokens": 12}},
    {"error": {"message": "Overloaded", "type": "server_error", "code": None}},
]
ANTHROPIC_STREAM: list[Any] = [
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "content": [],
                                          "usage": {"input_tokens": 25, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0,
     "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
    {"type": "content_block_delta", "index": 0,
     "delta": {"type": "thinking_delta", "thinking": "Let me"}},
    {"type": "content_block_delta", "index": 0,
     "delta": {"type": "signature_delta", "signature": "EoQ"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 2,
     "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Paris\"}"}},
    {"type": "content_block_stop", "index": 2},
    {"type": "content_block_start", "index": 3, "content_block": {
        "type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}},
    {"type": "content_block_stop", "index": 3},
    {"type": "content_block_start", "index": 4,
     "content_block": {"type": "redacted_thinking", "data": "EqkE"}},
    {"type": "content_block_stop", "index": 4},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 89, "input_tokens": 25}},
    {"type": "message_delta", "delta": {"stop_reason": "stop_sequence",
                                        "stop_sequence": "END"}},
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    {"type": "message_stop"},
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text() | st.just(SECRET) | st.just("\ud800"),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8) | st.sampled_from(["type", "text", "index"]),
                      inner, max_size=3),
    max_leaves=8)


def positions(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from positions(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from positions(item, (*path, index))


def mutated(value: Any, changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
    """``value`` with each change made where its path still exists (an earlier change
    may have replaced a branch)."""
    root = [copy.deepcopy(value)]
    for path, new in changes:
        parent: Any = root
        *steps, last = (0, *path)
        for step in steps:
            if not _holds(parent, step):
                break
            parent = parent[step]
        else:
            if new is DELETE and isinstance(parent, dict):
                parent.pop(last, None)
            elif new is not DELETE and _holds(parent, last):
                parent[last] = new
    return root[0]


def _holds(container: Any, step: Any) -> bool:
    if isinstance(container, dict):
        return step in container
    return isinstance(container, list) and isinstance(step, int) and step < len(container)


def mutations(stream: list[Any]) -> st.SearchStrategy[list[Any]]:
    places = list(positions(stream))[1:]
    change = st.tuples(st.sampled_from(places), json_values | st.just(DELETE))
    return st.lists(change, min_size=1, max_size=3).map(lambda c: mutated(stream, c))


def wire(value: Any) -> str:
    # the stdlib writes what orjson cannot (integers past 64 bits, lone surrogates as
    # \ud800 escapes), so both reach the adapter's parser
    return json.dumps(value)


def assert_documented(events: list[NormalizedEvent]) -> None:
    formatter = SSEFormatter()
    for event in events:
        if type(event) in (TextDelta, ReasoningDelta):
            assert type(event.content) is str and event.content  # type: ignore[union-attr]
        elif type(event) is ToolCallDelta:
            assert type(event.index) is int and event.index >= 0
            assert event.id is None or (type(event.id) is str and event.id)
            assert event.name is None or (type(event.name) is str and event.name)
            assert type(event.arguments) is str
        elif type(event) is Usage:
            assert type(event.input_tokens) is int and event.input_tokens >= 0
            assert type(event.output_tokens) is int and event.output_tokens >= 0
        elif type(event) is Finish:
            assert TOKEN.fullmatch(event.reason)
            assert event.stop_sequence is None or type(event.stop_sequence) is str
            orjson.dumps(event.stop_sequence)
        elif type(event) in (ReasoningSignature, RedactedReasoning):
            opaque = event.signature if type(event) is ReasoningSignature else \
                event.data  # type: ignore[union-attr]
            assert type(opaque) is str and opaque
            orjson.dumps(opaque)  # encodable: no lone surrogate
        else:
            assert type(event) is ErrorEvent
            assert TOKEN.fullmatch(event.type)
            assert type(event.message) is str and event.message
            assert type(event.retryable) is bool
            assert event.status is None or type(event.status) is int
        formatter.event(event)  # every field encodable: no lone surrogate, no huge int


def assert_fixed_wording(error: ProviderError) -> None:
    assert not error.retryable
    assert SECRET not in str(error)
    assert re.fullmatch(r"provider (event: [\w\[\]. ']+ is not [\w -]+"
                        r"|sent an event that is not valid JSON)", str(error)), str(error)


def feed_all(adapter: OpenAIAdapter | AnthropicAdapter, events: list[tuple[str, str]]) -> None:
    """As the relay does: events in order until the first error."""
    for name, data in events:
        try:
            produced = adapter.feed(name, data)
        except ProviderError as error:
            assert_fixed_wording(error)
            return
        assert_documented(produced)
        if any(type(event) is ErrorEvent for event in produced):
            return


SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(mutations(OPENAI_STREAM))
def test_openai_any_value_anywhere(stream: list[Any]) -> None:
    feed_all(OpenAIAdapter(), [("message", wire(chunk)) for chunk in stream]
             + [("message", "[DONE]")])


@SETTINGS
@given(mutations(ANTHROPIC_STREAM), st.booleans())
def test_anthropic_any_value_anywhere(stream: list[Any], named: bool) -> None:
    events = [(str(event.get("type")) if named and isinstance(event, dict) else "message",
               wire(event)) for event in stream]
    feed_all(AnthropicAdapter(), events)


@SETTINGS
@given(mutations(OPENAI_STREAM[1:2]).map(lambda stream: stream[0]))
def test_openai_shortcut_gives_what_the_full_reading_gives(chunk: Any) -> None:
    data = wire(chunk)
    try:
        result = OpenAIAdapter().feed_message(data)
    except ProviderError as error:
        assert_fixed_wording(error)
        return
    if type(result) is str:
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            decoded = loads_after_error(data)
        assert OpenAIAdapter()._chunk_events(decoded) == [TextDelta(result)]
    else:
        assert_documented(result)
