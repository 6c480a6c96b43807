"""The pump's text lane: a committed text token read in one step.

The lane relies on three documented promises: the reader's ``data_event_framing``,
the adapter's ``text_chunk_shape`` and the formatter's ``text_template``. Each is
held to what it promises here, and the pump with its lane to the general path alone
(:class:`ReferencePump`): the same frames, events, usage, ending and state, for
streams of text tokens among every read that must close the lane (a chunk of another
shape, a named event, an event cut across reads, an id or retry line, invalid UTF-8,
escapes, text before the stream commits), cut into reads at random, in every format.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.config import ProviderSettings
from sseserver.core.sse import SSEParser
from sseserver.events import ReasoningDelta, TextDelta, ToolCallDelta
from sseserver.formats.ai_sdk import AISDKFormatter
from sseserver.formats.anthropic_messages import AnthropicMessagesFormatter
from sseserver.formats.base import Formatter
from sseserver.formats.openai_chat import OpenAIChatFormatter
from sseserver.formats.sse import SSEFormatter
from sseserver.providers.openai import OpenAIAdapter
from sseserver.providers.registry import make_provider
from sseserver.pump import Pump, ReferencePump
from tests.test_pump import FORMATTERS, Run, cut

OPENAI = make_provider(ProviderSettings("p", "openai", "http://x"))
BOUND = 1 << 20
METADATA = {"stream_id": "S1", "provider": "p", "model": "m%s 100%"}


# -- the promises ------------------------------------------------------------------


def started(formatter: Formatter) -> Formatter:
    formatter.start(METADATA)
    return formatter


@pytest.mark.parametrize("format_name", sorted(FORMATTERS))
@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(min_size=1), min_size=1, max_size=5),
       before=st.sampled_from(["none", "text", "reasoning", "tool"]))
def test_a_text_template_makes_the_frame_text_makes(
        format_name: str, texts: list[str], before: str) -> None:
    by_template, by_text = (started(FORMATTERS[format_name]()) for _ in range(2))
    opening = {"text": TextDelta("x"), "reasoning": ReasoningDelta("r"),
               "tool": ToolCallDelta(0, "c", "f", "{}")}.get(before)
    if opening is not None:
        assert by_template.event(opening) == by_text.event(opening)
    for text in texts:
        expected = by_text.text(text)
        found = by_template.text_template()
        if found is None:  # no template now: text() opens something first
            assert by_template.text(text) == expected
            continue
        template, numbered = found
        if numbered:
            number = by_template.last_id + 1  # type: ignore[attr-defined]
            by_template.last_id = number  # type: ignore[attr-defined]
            assert template % (number, orjson.dumps(text)) == expected
        else:
            assert template % orjson.dumps(text) == expected
    assert by_template.end() == by_text.end()  # no state of its own differs


def test_templates_exist_where_the_lane_needs_them() -> None:
    assert SSEFormatter().text_template() is not None
    assert OpenAIChatFormatter(1, True).text_template() is None  # before its start
    assert started(OpenAIChatFormatter(1, True)).text_template() is not None
    for formatter in (AISDKFormatter(), AnthropicMessagesFormatter()):
        started(formatter)
        assert formatter.text_template() is None  # no text run or block open
        formatter.text("a")
        assert formatter.text_template() is not None


@settings(max_examples=300, deadline=None)
@given(text=st.text(min_size=1), spaces=st.sampled_from(["", " ", "\t"]),
       ascii_only=st.booleans())
def test_a_json_string_of_one_byte_a_character_is_what_orjson_writes(
        text: str, spaces: str, ascii_only: bool) -> None:
    """The lane passes a provider's JSON string on as it is when it has one byte a
    character and its two quotes; any other (escapes, blanks, non-ASCII) is rewritten."""
    written = (spaces + json.dumps(text, ensure_ascii=ascii_only) + spaces).encode()
    content = orjson.loads(written)
    if len(written) == len(content) + 2:
        assert written == orjson.dumps(content)


def test_the_reader_frames_a_data_event_only_between_events() -> None:
    reader = SSEParser(refuse_documents=True)
    assert reader.data_event_framing() is None  # the stream not begun (its BOM check)
    assert reader.feed_data_line(b"data: a\n\n") == "a"
    before, after = reader.data_event_framing() or (b"", b"")
    assert [e.data for e in reader.feed(before + b"x y" + after)] == ["x y"]
    reader.feed(b"id: 7\n")
    assert reader.data_event_framing() is None  # an id not yet the last event id
    reader.feed(b"data: b\n\n")
    assert reader.data_event_framing() is not None and reader.last_event_id == "7"
    reader.feed(b"data: c")
    assert reader.data_event_framing() is None  # an event pending


def test_the_adapter_names_its_text_chunk_shape_once_proved() -> None:
    adapter = OpenAIAdapter()
    chunk = '{"id":"c","choices":[{"index":0,"delta":{"content":%s},"finish_reason":null}]}'
    assert adapter.text_chunk_shape() is None
    assert adapter.feed_message(chunk % '"a"') == "a"
    head, tail = adapter.text_chunk_shape() or ("", "")
    assert head + '"zz\\n"' + tail == chunk % '"zz\\n"'
    assert adapter.feed_message(head + '"zz\\n"' + tail) == "zz\n"


# -- the lane against the general path -------------------------------------------------

_HEAD = b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",' \
    b'"choices":[{"index":0,'
_TAIL = b',"logprobs":null,"finish_reason":null}]}'


def _text_event(json_text: bytes) -> bytes:
    return b"data: " + _HEAD + b'"delta":{"content":' + json_text + b"}" + _TAIL + b"\n\n"


# Texts the lane must leave to the general path, or pass on rewritten by orjson.
_SPECIAL_TEXTS = [b'"caf\xc3"', b'"\xff"', b'"\\ud800"', b'""', b' "a"', b'"a" ', b'"\\/"',
                  b"1", b'"a\x01"', b'"\\u0041"', b'"\\u00e9"', '"é"'.encode(), b"null",
                  # blanks JSON allows around the string: a CR or an LF among them is
                  # a line break to the reader, a tab is not
                  b'"a"\r', b'\r"a"', b'"a" \r ', b'"a"\n', b'\n"a"', b'"a"\t', b'\t"a"']
_JSON_TEXTS = st.one_of(
    st.text(min_size=1, max_size=10).map(orjson.dumps),  # as orjson writes it
    st.text(min_size=1, max_size=10).map(lambda t: json.dumps(t).encode()),  # escaped
    st.sampled_from(_SPECIAL_TEXTS))
# Reads that must close the lane, or that come before it may open.
_CLOSING = [
    b"data: " + _HEAD + b'"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
    b"\n\n",
    b"data: " + _HEAD + b'"delta":{"reasoning_content":"hm"},"finish_reason":null}]}\n\n',
    b"data: " + _HEAD + b'"delta":{"tool_calls":[{"index":0,"id":"call_1","type":'
    b'"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"other shape"}}]}\n\n',  # the shape breaks
    b"event: message\n" + _text_event(b'"named"'),
    b"event: delta\n" + _text_event(b'"named other"'),
    b"id: 42\n" + _text_event(b'"with an id"'),
    b"retry: 250\n" + _text_event(b'"with a retry"'),
    b"id: 43\n\n",
    b": keep-alive\n\n",
    b"data: " + _HEAD + b'"delta":{"content":"two"},\ndata: "finish_reason":null}]}\n\n',
    _text_event(b'"crlf"').replace(b"\n", b"\r\n"),
    b"data: " + _HEAD + b'"delta":{"content":"last"},"logprobs":null,"finish_reason":'
    b'"stop"}]}\n\n',  # the shape's head, another tail
    # the shape's lengths, another head (a second choice) or another tail
    _text_event(b'"second"').replace(b'"index":0', b'"index":1'),
    _text_event(b'"ended"').replace(b'"finish_reason":null', b'"finish_reason":"ab"'),
]
_OTHERS = st.sampled_from(_CLOSING)
_EVENTS = st.lists(st.one_of(_JSON_TEXTS.map(_text_event), _OTHERS), max_size=30)
_END = (b"data: " + _HEAD + b'"delta":{},"finish_reason":"stop"}]}\n\n'
        b'data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":3,'
        b'"completion_tokens":2}}\n\ndata: [DONE]\n\n')


class CountingAdapter(OpenAIAdapter):
    """The OpenAI adapter, counting the reads it is given."""

    __slots__ = ("reads",)

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def feed_message(self, data: str) -> Any:
        self.reads += 1
        return super().feed_message(data)

    def feed(self, event: str, data: str) -> Any:
        self.reads += 1
        return super().feed(event, data)


def run_pump(cls: type[Pump], format_name: str, reads: list[bytes]
             ) -> tuple[Run, Pump, SSEParser, CountingAdapter, bytes]:
    run = Run()
    pump = run.pump(cls, FORMATTERS[format_name]())
    reader = OPENAI.new_body_reader(BOUND, BOUND)
    assert isinstance(reader, SSEParser)
    adapter = CountingAdapter()
    pump.begin(reader, adapter)
    for read in reads:
        if run.settled:
            break
        pump.on_body(read)
    pump.on_body_end()
    return run, pump, reader, adapter, b"".join(pump.end_frames())


@settings(max_examples=300, deadline=None)
@given(first=st.lists(_OTHERS, max_size=3), events=_EVENTS,
       texts=st.lists(st.text(min_size=1, max_size=8), min_size=3, max_size=6),
       cuts=st.sets(st.integers(1, 4000), max_size=6),
       by_event=st.booleans(), per_read=st.integers(1, 12),
       format_name=st.sampled_from(sorted(FORMATTERS)))
def test_the_lane_gives_the_general_paths_frames_and_state(
        first: list[bytes], events: list[bytes], texts: list[str], cuts: set[int],
        by_event: bool, per_read: int, format_name: str) -> None:
    """Reads of one or several whole events (a burst takes the lane's reading too),
    or cut anywhere."""
    tokens = [_text_event(orjson.dumps(text)) for text in texts]
    blocks = [*first, *tokens, *events, *tokens, _END]
    body = b"".join(blocks)
    ends = {sum(map(len, blocks[:n])) for n in range(1, len(blocks), per_read)} \
        if by_event else set()
    reads = cut(body, ends | cuts)
    lane = run_pump(Pump, format_name, reads)
    general = run_pump(ReferencePump, format_name, reads)
    (run, pump, reader, _, last), (run2, pump2, reader2, _, last2) = lane, general
    assert b"".join(run.output.writes) + last == b"".join(run2.output.writes) + last2
    assert run.ending() == run2.ending() and run.commits == run2.commits
    assert (pump.events, pump.silent_events, pump.usage, pump.committed) == \
        (pump2.events, pump2.silent_events, pump2.usage, pump2.committed)
    assert (reader.last_event_id, reader.retry) == (reader2.last_event_id, reader2.retry)


def test_the_lane_reads_committed_tokens_without_the_adapter() -> None:
    """Read event by event, a stream's tokens after the second reach the adapter no
    more: the lane read them (and the frames are the general path's)."""
    tokens = [_text_event(orjson.dumps(f"t{n} ")) for n in range(10)]
    reads = [*tokens, _END]
    for format_name in sorted(FORMATTERS):
        lane = run_pump(Pump, format_name, reads)
        general = run_pump(ReferencePump, format_name, reads)
        assert lane[0].output.writes == general[0].output.writes
        assert lane[3].reads == 5  # two tokens, the finish, the usage, the end
        assert general[3].reads == 13  # ten tokens, the finish, the usage, the end


def test_a_shape_broken_for_good_stops_trying_the_lane() -> None:
    """Text chunks of ever other shapes: the lane never opens, and its tries end."""
    reads = [b'data: {"choices":[{"delta":{"content":"%d"}}],"n":%d}\n\n' % (n, n)
             for n in range(12)]
    lane = run_pump(Pump, "sse", [*reads, _END])
    general = run_pump(ReferencePump, "sse", [*reads, _END])
    assert lane[0].output.writes == general[0].output.writes
    assert lane[3].reads == general[3].reads


def test_a_burst_reads_committed_tokens_without_the_adapter() -> None:
    """Ten tokens in one read after the commit: with the lane closed (a reasoning
    event before them), the first by the adapter, which says the shape, the nine
    others as the lane reads them; with the lane open, all ten so."""
    tokens = [_text_event(orjson.dumps(f"t{n} ")) for n in range(10)]
    for before, adapter_reads in (([], 0), ([_CLOSING[1]], 2)):
        reads = [tokens[0], tokens[1], *before, b"".join(tokens), _END]
        for format_name in sorted(FORMATTERS):
            lane = run_pump(Pump, format_name, reads)
            general = run_pump(ReferencePump, format_name, reads)
            assert lane[0].output.writes == general[0].output.writes
            assert lane[3].reads == 2 + adapter_reads + 3


@pytest.mark.parametrize("format_name", sorted(FORMATTERS))
@pytest.mark.parametrize("per_read", [1, 2, 9])
@pytest.mark.parametrize("closing", [*(_text_event(text) for text in _SPECIAL_TEXTS),
                                     *_CLOSING])
def test_every_read_that_closes_the_lane_gives_the_general_paths_frames(
        format_name: str, per_read: int, closing: bytes) -> None:
    """A read that must close the lane (or a text the lane must leave to the general
    path, or rewrite) after tokens that opened it, then tokens again: read alone, or
    a few events a read."""
    tokens = [_text_event(orjson.dumps(f"t{n} ")) for n in range(4)]
    blocks = [*tokens, closing, *tokens, _END]
    reads = [*blocks[:2], *(b"".join(blocks[n:n + per_read])
                            for n in range(2, len(blocks), per_read))]
    lane = run_pump(Pump, format_name, reads)
    general = run_pump(ReferencePump, format_name, reads)
    assert b"".join(lane[0].output.writes) + lane[4] == \
        b"".join(general[0].output.writes) + general[4]
    assert (lane[1].events, lane[1].silent_events, lane[0].ending()) == \
        (general[1].events, general[1].silent_events, general[0].ending())
    assert (lane[2].last_event_id, lane[2].retry) == \
        (general[2].last_event_id, general[2].retry)
    assert lane[3].reads <= general[3].reads  # the lane reads some (no shape broken)


def test_a_first_burst_reads_its_tokens_by_the_shape_once_the_adapter_knows_it() -> None:
    """A body whose first read holds its role chunk and many tokens (a fast model's,
    or one read late): the adapter reads texts until it knows their shape, the
    lane's reading the others, and the next burst is read by the open lane."""
    role = b"data: " + _HEAD + b'"delta":{"role":"assistant","content":""},' \
        b'"finish_reason":null}]}\n\n'
    tokens = [_text_event(orjson.dumps(f"t{n} ")) for n in range(24)]
    reads = [role + b"".join(tokens[:12]), b"".join(tokens[12:]), _END]
    for format_name in sorted(FORMATTERS):
        lane = run_pump(Pump, format_name, reads)
        general = run_pump(ReferencePump, format_name, reads)
        assert lane[0].output.writes == general[0].output.writes
        # the role, the texts until the adapter knew their shape (one or two), the
        # end's three
        assert lane[3].reads <= 1 + 2 + 3


def test_a_burst_of_the_lanes_tokens_alone_keeps_the_lane_open() -> None:
    """Tokens that come two a read once the lane is open (reads that merged) are read
    by its promises, and the lane stays open for the next token read alone."""
    tokens = [_text_event(orjson.dumps(f"t{n} ")) for n in range(8)]
    reads = [*tokens[:3], tokens[3] + tokens[4], tokens[5], tokens[6] + tokens[7], _END]
    for format_name in sorted(FORMATTERS):
        lane = run_pump(Pump, format_name, reads)
        general = run_pump(ReferencePump, format_name, reads)
        assert lane[0].output.writes == general[0].output.writes
        assert lane[3].reads == 2 + 3  # two tokens, then the end's three events


@pytest.mark.parametrize("format_name", sorted(FORMATTERS))
@pytest.mark.parametrize("cut_at", [2, 1])  # before the blank line, or between its LFs
def test_a_burst_cut_in_its_last_events_end_leaves_that_event_to_the_reader(
        format_name: str, cut_at: int) -> None:
    """The lane's tokens of a burst are read by it, but not an event whose blank line
    has not come: the provider may still add a line to it (here one that makes it no
    JSON), and the reader says what it is once it ends."""
    tokens = [_text_event(orjson.dumps(f"t{n} ")) for n in range(5)]
    for then in (b"\n" * cut_at, b"\ndata: more\n\n"[2 - cut_at:] if cut_at == 2 else
                 b"data: more\n\n"):
        reads = [tokens[0], tokens[1], tokens[2] + tokens[3] + tokens[4][:-cut_at],
                 then, _END]
        lane = run_pump(Pump, format_name, reads)
        general = run_pump(ReferencePump, format_name, reads)
        assert b"".join(lane[0].output.writes) + lane[4] == \
            b"".join(general[0].output.writes) + general[4]
        assert lane[0].ending() == general[0].ending()
        assert lane[1].events == general[1].events
