"""The OpenAI adapter's reading of a chunk, its fields checked inline, against the
reading it replaced (each field through a :mod:`shapes` reader): the same events, the
same state after, the same error for any chunk, in any stream."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.errors import ProviderError
from sseserver.events import Finish, NormalizedEvent, ReasoningDelta, TextDelta, Usage
from sseserver.providers import openai
from sseserver.providers.openai import OpenAIAdapter, plain_text
from sseserver.providers.shapes import (
    optional_count,
    optional_list,
    optional_object,
    optional_text,
    wire_token,
)
from tests.providers.test_hostile_events import (
    OPENAI_STREAM,
    SETTINGS,
    json_values,
    mutations,
    wire,
)


class ReferenceAdapter(OpenAIAdapter):
    """The reading as it was: every field through its reader, in this order."""

    __slots__ = ()

    def _chunk_events(self, chunk: Any) -> list[NormalizedEvent]:
        if type(chunk) is not dict:
            raise openai.malformed("a chunk", "a JSON object")
        error = chunk.get("error")
        if error:
            return [openai._error_event(error)]
        events: list[NormalizedEvent] = []
        choices = optional_list(chunk.get("choices"), "choices")
        choice = optional_object(choices[0], "choices[0]") if choices else None
        if choice is not None and \
                (optional_count(choice.get("index"), "choices[0].index") or 0) == 0:
            self._reference_choice_events(choice, events)
        usage = optional_object(chunk.get("usage"), "usage")
        if usage is not None:
            self._usage = Usage(
                optional_count(usage.get("prompt_tokens"), "usage.prompt_tokens") or 0,
                optional_count(usage.get("completion_tokens"), "usage.completion_tokens") or 0)
            events.append(self._usage)
        return events

    def _reference_choice_events(self, choice: dict[str, Any],
                                 events: list[NormalizedEvent]) -> None:
        delta = optional_object(choice.get("delta"), "choices[0].delta")
        if delta:
            openai._content_events(delta.get("content"), events)
            reasoning = optional_text(delta.get("reasoning_content"), "delta.reasoning_content") \
                or optional_text(delta.get("reasoning"), "delta.reasoning")
            if reasoning:
                events.append(ReasoningDelta(reasoning))
            refusal = optional_text(delta.get("refusal"), "delta.refusal")
            if refusal:
                events.append(TextDelta(refusal))
            for call in optional_list(delta.get("tool_calls"), "delta.tool_calls") or ():
                self._tool_call_events(call, events)
        reason = optional_text(choice.get("finish_reason"), "choices[0].finish_reason")
        if reason:
            events.extend(self._complete_tool_calls())
            events.append(Finish(wire_token(reason, "other")))


def reference_plain_text(chunk: Any) -> str | None:
    try:
        choice = chunk["choices"][0]
        delta = choice["delta"]
        content = delta["content"]
    except (KeyError, IndexError, TypeError):
        return None
    if type(content) is not str or not content or len(delta) != 1 or \
            choice.get("finish_reason") is not None or chunk.get("usage") is not None \
            or "error" in chunk:
        return None
    index = choice.get("index", 0)
    return content if index == 0 and type(index) is int else None


def reading(adapter: OpenAIAdapter, chunk: Any) -> tuple[Any, ...]:
    try:
        events: Any = adapter._chunk_events(chunk)
    except ProviderError as exc:
        events = ("error", str(exc), exc.retryable)
    return events, adapter._usage, adapter._tool_arguments


def assert_same_stream(stream: list[Any]) -> None:
    ours, reference = OpenAIAdapter(), ReferenceAdapter()
    for chunk in stream:  # as a parser gives them: any JSON value
        assert reading(ours, chunk) == reading(reference, chunk), stream
        assert plain_text(chunk) == reference_plain_text(chunk), chunk


@SETTINGS
@given(mutations(OPENAI_STREAM))
def test_any_stream_reads_as_the_reading_with_a_reader_per_field(stream: list[Any]) -> None:
    assert_same_stream(stream)


@SETTINGS
@given(st.lists(json_values, max_size=3))
def test_any_json_reads_as_the_reading_with_a_reader_per_field(stream: list[Any]) -> None:
    assert_same_stream(stream)


# Values at the edge of each reader's rule, for every field the reading checks.
EDGES = st.sampled_from([None, "", "x", "stop", "tool_calls", 0, 1, -1, 2**53 - 1, 2**53,
                         True, False, 0.0, 1.5, [], ["x"], {}, {"a": 1}])


def fields(spec: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with any of these keys, each holding its own kind of value (mostly) or an
    edge: a chunk whose every field is at an edge is refused at its first."""
    return st.fixed_dictionaries({}, optional={key: st.one_of(value, value, EDGES)
                                               for key, value in spec.items()})


deltas = fields({"role": st.just("assistant"), "content": st.sampled_from(["", "Hi"]),
                 "reasoning_content": st.just("hmm"), "reasoning": st.just("so"),
                 "refusal": st.just("no"),
                 "tool_calls": st.just([{"index": 0, "id": "c", "function": {"name": "f"}}])})
choices = fields({"index": st.just(0), "delta": deltas | st.sampled_from(openai._INERT_DELTAS),
                  "finish_reason": st.sampled_from(["stop", "length", "weird reason!"]),
                  "logprobs": st.none()})
chunks = fields({"choices": st.lists(choices, max_size=2),
                 "usage": fields({"prompt_tokens": st.just(9), "completion_tokens": st.just(3)}),
                 "error": st.just({"message": "m", "type": "server_error"})})
# A choice and its delta always there, as objects: edges at the leaves, most of them
# reached.
leaves = st.builds(lambda delta, choice: {"choices": [{**choice, "delta": delta}]},
                   deltas, fields({"index": st.just(0), "finish_reason": st.just("stop")}))


@settings(max_examples=1000, deadline=None)
@given(st.lists(leaves | chunks, min_size=1, max_size=4))
def test_every_checked_field_at_its_edges_reads_as_the_reading_with_a_reader_per_field(
        stream: list[Any]) -> None:
    assert_same_stream(stream)


@pytest.mark.parametrize("delta", openai._INERT_DELTAS)
def test_a_role_delta_known_to_give_nothing_gives_nothing_read_whole(delta: dict[str, Any]
                                                                      ) -> None:
    chunk = {"choices": [{"index": 0, "delta": dict(delta), "finish_reason": None}]}
    assert ReferenceAdapter()._chunk_events(chunk) == []
    assert OpenAIAdapter()._chunk_events(chunk) == []


@pytest.mark.parametrize("reason", sorted(openai._FINISHES))
def test_a_finish_made_once_is_the_finish_the_chunk_gives(reason: str) -> None:
    chunk = {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    assert OpenAIAdapter()._chunk_events(chunk) == ReferenceAdapter()._chunk_events(chunk) \
        == [Finish(wire_token(reason, "other"))]


# -- the one-pass reading of a stream's common chunks ----------------------------------

def message_reading(adapter: OpenAIAdapter, data: str) -> tuple[Any, ...]:
    """What :meth:`OpenAIAdapter.feed_message` gives for ``data`` (a bare text as the
    one text delta it stands for), or the error it raises, and the state after."""
    try:
        result = adapter.feed_message(data)
        events: Any = [TextDelta(result)] if type(result) is str else result
    except ProviderError as exc:
        events = ("error", str(exc), exc.retryable)
    return events, adapter._usage, adapter._tool_arguments, adapter.finished


def reference_reading(adapter: ReferenceAdapter, data: str) -> tuple[Any, ...]:
    try:
        events: Any = adapter.feed("message", data)
    except ProviderError as exc:
        events = ("error", str(exc), exc.retryable)
    return events, adapter._usage, adapter._tool_arguments, adapter.finished


def assert_same_messages(stream: list[Any]) -> None:
    """Each chunk, as the wire gives it, read by the shortcuts (the one-pass reading of
    the common chunks, the text shape) as the reading with a reader per field reads it;
    a bare text only for a plain text delta."""
    ours, reference = OpenAIAdapter(), ReferenceAdapter()
    for chunk in [*stream, "[DONE]"]:
        data = chunk if chunk == "[DONE]" else wire(chunk)
        assert message_reading(ours, data) == reference_reading(reference, data), stream
        if data != "[DONE]":
            try:
                parsed = openai._parse(data)
            except ProviderError:
                continue
            one_pass = OpenAIAdapter()._common_reading(parsed, data)
            assert type(one_pass) is not str or one_pass == reference_plain_text(parsed)


@SETTINGS
@given(mutations(OPENAI_STREAM))
def test_any_stream_read_by_the_shortcuts_reads_as_the_reading_with_a_reader_per_field(
        stream: list[Any]) -> None:
    assert_same_messages(stream)


@SETTINGS
@given(st.lists(json_values, max_size=3))
def test_any_json_read_by_the_shortcuts_reads_as_the_reading_with_a_reader_per_field(
        stream: list[Any]) -> None:
    assert_same_messages(stream)


@settings(max_examples=1000, deadline=None)
@given(st.lists(leaves | chunks, min_size=1, max_size=4))
def test_every_checked_field_at_its_edges_read_by_the_shortcuts_reads_as_the_reading(
        stream: list[Any]) -> None:
    assert_same_messages(stream)


# A stream's common chunks as providers send them: its role chunk, a finish after a
# tool call's arguments (the tool calls are completed first), usage alone.
COMMON_CHUNKS = st.sampled_from([
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "",
                                        "refusal": None}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "{}"}}]}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": None},
    {"choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    {"choices": [], "usage": {"prompt_tokens": 5}, "error": None},
    {"choices": [{"index": 0, "delta": {"content": "a"}}], "error": None},
])


# The common chunks with a field at an edge: usage alone, a role chunk or a finish.
usage_alone = st.builds(lambda usage: {"choices": [], "usage": usage},
                        fields({"prompt_tokens": st.just(9), "completion_tokens": st.just(3)}))
role_or_finish = st.builds(
    lambda delta, choice: {"choices": [{**choice, "delta": delta}], "usage": None},
    st.sampled_from([{}, *openai._INERT_DELTAS]) | EDGES,
    fields({"index": st.just(0), "finish_reason": st.sampled_from(sorted(openai._FINISHES))}))


@settings(max_examples=500, deadline=None)
@given(st.lists(COMMON_CHUNKS | leaves | usage_alone | role_or_finish, min_size=1, max_size=6))
def test_a_streams_common_chunks_in_any_order_read_as_the_reading(stream: list[Any]) -> None:
    assert_same_messages(stream)


RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "recordings"


def recorded_chunks() -> list[Any]:
    if not RECORDINGS.is_dir():
        return []
    chunks = []
    for path in sorted(RECORDINGS.glob("o[ac]_*.sse")) + sorted(RECORDINGS.glob("az_*.sse")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                with contextlib.suppress(ProviderError):  # read whole elsewhere
                    chunks.append(openai._parse(line[5:].strip()))
    return chunks


def test_the_recorded_role_finish_and_usage_chunks_are_read_in_one_pass() -> None:
    """The one pass is taken by the chunks it was made for, as providers send them,
    and gives for them what the full reading gives."""
    chunks = recorded_chunks()
    if not chunks:
        pytest.skip("no recordings at " + str(RECORDINGS))
    kinds: set[str] = set()
    for chunk in chunks:
        expected = ReferenceAdapter()._chunk_events(chunk)
        one_pass = OpenAIAdapter()._common_reading(chunk, orjson.dumps(chunk).decode())
        if one_pass is not None:
            assert ([TextDelta(one_pass)] if type(one_pass) is str else one_pass) == expected
            kinds.add(type(one_pass).__name__ if one_pass else "role")
            kinds.update(type(event).__name__ for event in one_pass if type(one_pass) is list)
    assert kinds >= {"role", "str", "Finish", "Usage"}
