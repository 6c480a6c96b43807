"""The OpenAI adapter's reading of a chunk, its fields checked inline, against the
reading it replaced (each field through a :mod:`shapes` reader): the same events, the
same state after, the same error for any chunk, in any stream."""

from __future__ import annotations

from typing import Any

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
