"""The OpenAI adapter's text-chunk shape: a stream's text chunks are read by parsing
their text alone once the first has shown the shape. Whatever that reading takes, the full
reading of the chunk must give the same (one text delta of that text); everything
else must go to the full reading and give what it gives."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.errors import ProviderError
from sseserver.events import TextDelta
from sseserver.providers.openai import (
    MAX_SHAPED_CHUNK,
    OpenAIAdapter,
    plain_text,
    text_shape,
)
from tests.providers.test_hostile_events import json_values

# Text chunks as servers write them: OpenAI's, with usage null (include_usage), with
# whitespace (Python's json.dumps), Azure's filter results, an index left out, the
# text's key repeated (the last one counts), "content" also elsewhere in the chunk.
SHAPES = [
    '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
    '"system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":%s},'
    '"logprobs":null,"finish_reason":null}]}',
    '{"id":"c","choices":[{"index":0,"delta":{"content":%s},"finish_reason":null}],'
    '"usage":null}',
    '{"id": "c", "choices": [{"index": 0, "delta": {"content" : %s}, '
    '"finish_reason": null}]}',
    '{"choices":[{"content_filter_results":{"hate":{"filtered":false}},"delta":'
    '{"content":%s},"finish_reason":null,"index":0}],"created":1,"id":"c","model":"m"}',
    '{"choices":[{"delta":{"content":%s}}]}',
    '{"choices":[{"delta":{"content":"first","content":%s}}]}',
]
# Chunks whose last "content" key is not the text's: no shape is proved, all is read whole.
NO_SHAPES = [
    '{"choices":[{"delta":{"content":%s}}],"x":{"content":"elsewhere"}}',
    '{"choices":[{"delta":{"content":%s}}],"content":"after"}',
]


def chunk(shape: str, value: str) -> str:
    return shape % value


def text(content: str) -> str:
    return orjson.dumps(content).decode()


def full_reading(data: str) -> Any:
    """What the full reading gives (or the error it raises)."""
    try:
        return OpenAIAdapter().feed("message", data)
    except ProviderError as exc:
        return ("error", str(exc))


def learnt(shape: str) -> OpenAIAdapter:
    adapter = OpenAIAdapter()
    assert adapter.feed_message(chunk(shape, text("a"))) == "a"
    assert adapter.feed_message(chunk(shape, text("b"))) == "b"
    return adapter


def read(adapter: OpenAIAdapter, data: str) -> Any:
    """What the shortcuts give, as events (a bare text is one text delta)."""
    try:
        result = adapter.feed_message(data)
    except ProviderError as exc:
        return ("error", str(exc))
    return [TextDelta(result)] if type(result) is str else result


# What may stand where the text goes: JSON strings of any text (escapes, non-ASCII,
# empty), other JSON values, and fragments that make the chunk something else.
SLOT_VALUES = st.one_of(
    st.text().map(text),
    st.text().map(lambda t: json.dumps(t)),  # \uXXXX escapes for every non-ASCII
    st.sampled_from(['"\\ud800"', '"a\\ud83d"', '""', '"\\"', '"a" ', ' "a"', '"a","b"',
                     'null', '1', '["a"]', '[{"type":"text","text":"a"}]', '{"a":1}',
                     '"a"}],"usage":{"prompt_tokens":1,"completion_tokens":1},"z":[{"y":"',
                     '"a","role":"assistant"', '"a"},"finish_reason":"stop","d":{"e":"',
                     '', '"', '"\x00"', '"\\u0000"', 'true']),
)


@pytest.mark.parametrize("shape", SHAPES + NO_SHAPES)
@settings(max_examples=150, deadline=None)
@given(value=SLOT_VALUES)
def test_a_chunk_read_by_its_shape_reads_as_the_full_reading(shape: str, value: str) -> None:
    adapter = learnt(shape)
    for data in chunk(shape, value), chunk(shape, text("a")):  # "a": the shape's source
        assert read(adapter, data) == full_reading(data)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_shape_is_proved_from_the_first_text_chunk(shape: str) -> None:
    adapter = OpenAIAdapter()
    assert adapter.feed_message(chunk(shape, text("a"))) == "a"
    assert adapter.text_chunk_shape() is not None
    assert adapter.feed_message(chunk(shape, text('é"\\\n'))) == 'é"\\\n'


def test_a_stream_whose_text_chunks_vary_reads_them_whole() -> None:
    """A field that changes in every chunk (OpenAI's obfuscation padding): the shape
    read from one chunk fits no other, and the stream stops trying."""
    shape = '{"choices":[{"delta":{"content":%s}}],"obfuscation":"%s"}'
    adapter = OpenAIAdapter()
    for n, token in enumerate("abcde"):
        assert adapter.feed_message(shape % (text(token), "x" * n)) == token
    assert adapter.text_chunk_shape() is None


@pytest.mark.parametrize("shape", NO_SHAPES)
def test_no_shape_where_the_last_content_key_is_not_the_text(shape: str) -> None:
    adapter = OpenAIAdapter()
    assert text_shape(shape % '"a"') is not None  # found, but the proof fails
    for token in "abbb":
        assert adapter.feed_message(shape % text(token)) == token
    assert adapter.text_chunk_shape() is None


def test_no_shape_where_the_content_is_no_string() -> None:
    parts = '{"choices":[{"delta":{"content":[{"type":"text","text":"a"}]}}]}'
    assert text_shape(parts) is None  # the content is no string


def test_events_of_other_shapes_still_read_whole_after_the_shape_is_known() -> None:
    shape = SHAPES[1]
    adapter = learnt(shape)
    finish = '{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],' \
        '"usage":null}'
    usage = '{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}'
    assert [type(e).__name__ for e in adapter.feed_message(finish)] == ["Finish"]
    assert [type(e).__name__ for e in adapter.feed_message(usage)] == ["Usage"]
    assert adapter.feed_message("[DONE]") == [] and adapter.finished


def test_a_long_text_chunk_gives_no_shape_to_hold() -> None:
    shape = '{"choices":[{"delta":{"content":%s}}],"pad":"' + "x" * MAX_SHAPED_CHUNK + '"}'
    adapter = OpenAIAdapter()
    for token in "abc":
        assert adapter.feed_message(shape % text(token)) == token
    assert adapter.text_chunk_shape() is None


# The text's place as a regular expression found it (one pass of backtracking over the
# whole chunk): the last '"content"' followed by a colon, and the JSON string there.
_TO_CONTENT_VALUE = re.compile(r'.*"content"\s*:\s*', re.DOTALL)
_STRING_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def reference_text_shape(data: str) -> tuple[str, str] | None:
    key = _TO_CONTENT_VALUE.match(data)
    token = _STRING_TOKEN.match(data, key.end()) if key is not None else None
    if token is None:
        return None
    return data[:token.start()], data[token.end():]


# Pieces that make and break keys, colons and strings, overlapping keys among them.
PIECES = st.sampled_from(['"content"', '"content', 'content"', '"content":', ':', ' ', '\n',
                          '\t', '"a"', '\\"', '\\', '"', 'x', '{', '}', '"\\n"', 'é'])


@settings(max_examples=2000, deadline=None)
@given(st.lists(PIECES, max_size=14).map("".join) | st.text(max_size=30) |
       st.builds(chunk, st.sampled_from(SHAPES + NO_SHAPES), SLOT_VALUES))
def test_the_texts_place_is_where_the_regular_expression_found_it(data: str) -> None:
    assert text_shape(data) == reference_text_shape(data)


class PlainTextProof(OpenAIAdapter):
    """The shape proved as it was: the whole probe chunk read by plain_text."""

    __slots__ = ()

    def _learn_text_shape(self, data: str, content: str) -> None:
        self._text_shape = ()
        shape = text_shape(data) if len(data) <= MAX_SHAPED_CHUNK else None
        if shape is None:
            return
        head, tail = shape
        probe = content + "."
        try:
            proved = plain_text(orjson.loads(head + text(probe) + tail)) == probe
        except orjson.JSONDecodeError:
            proved = False
        if proved:
            self._text_shape = (head, tail, len(head), -len(tail))


SAME = object()  # where a chunk repeats its text elsewhere: the text, or a "content" key


def text_chunk(content: str, extra: list[tuple[str, Any]], place: int, spaced: bool) -> str:
    """A text chunk with other keys beside its choice and its delta (any JSON, the text
    itself, {"content": text}), in any order, with or without whitespace."""
    def value(item: Any) -> Any:
        return {"content": content} if item is SAME and place % 2 else \
            content if item is SAME else item
    delta: dict[str, Any] = {"content": content}
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
    chunk_: dict[str, Any] = {"id": "c", "choices": [choice]}
    for n, (key, item) in enumerate(extra):
        [chunk_, choice, delta][(place + n) % 3][key] = value(item)
    return json.dumps(chunk_, separators=(", ", ": ") if spaced else (",", ":"))


@settings(max_examples=1500, deadline=None)
@given(st.text(min_size=1, max_size=5), st.lists(st.tuples(
    st.sampled_from(["x", "content", "usage", "error", "finish_reason", "index", "role"]),
    json_values | st.just(SAME)), max_size=3), st.integers(0, 5), st.booleans())
def test_the_shape_proved_by_the_probes_place_is_the_one_plain_text_proved(
        content: str, extra: list[tuple[str, Any]], place: int, spaced: bool) -> None:
    data = text_chunk(content, extra, place, spaced)
    ours, reference = OpenAIAdapter(), PlainTextProof()
    assert read(ours, data) == read(reference, data)
    assert ours.text_chunk_shape() == reference.text_chunk_shape()
    for other in "b", content + content, '"':
        assert read(ours, text_chunk(other, extra, place, spaced)) == \
            read(reference, text_chunk(other, extra, place, spaced))
