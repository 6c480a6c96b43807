"""The default SSE output format: exact frames, and what spec parsers make of them."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.core.sse import SSEParser
from sseserver.events import ErrorEvent, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from sseserver.formats.sse import HEARTBEAT, SSEFormatter


def test_exact_frames() -> None:
    fmt = SSEFormatter(retry_ms=3000)
    assert fmt.preamble == b"retry: 3000\n"
    assert fmt.start({"stream_id": "s", "provider": "p", "model": "m"}) == (
        b'id: 1\nevent: metadata\ndata: {"stream_id":"s","provider":"p","model":"m"}\n\n')
    assert fmt.event(TextDelta("Hello")) == b'id: 2\ndata: {"content":"Hello"}\n\n'
    assert fmt.event(ReasoningDelta("hm")) == b'id: 3\nevent: reasoning\ndata: {"content":"hm"}\n\n'
    assert fmt.event(ToolCallDelta(0, "call_1", "f", "{")) == (
        b'id: 4\nevent: tool_call\ndata: {"index":0,"id":"call_1","name":"f","arguments":"{"}\n\n')
    assert fmt.event(Finish("stop")) == b""
    assert fmt.event(Usage(12, 2)) == (
        b'id: 5\nevent: usage\ndata: {"input_tokens":12,"output_tokens":2}\n\n')
    assert fmt.event(ErrorEvent("overloaded", "busy", True, 529)) == (
        b'id: 6\nevent: error\ndata: {"type":"overloaded","message":"busy","retryable":true,'
        b'"status":529}\n\n')
    assert fmt.end() == b"id: 7\ndata: [DONE]\n\n"
    assert HEARTBEAT == b": ping\n"


def test_error_without_status_omits_it() -> None:
    frame = SSEFormatter().event(ErrorEvent("x", "y", False))
    assert b'"status"' not in frame


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=20), st.integers(0, 5))
def test_parsers_get_back_every_delta_exactly(contents: list[str], beats: int) -> None:
    """Any text, including CR, LF and NUL, survives: JSON escapes them."""
    fmt = SSEFormatter()
    wire = fmt.preamble + HEARTBEAT * beats + fmt.start({"stream_id": "s"}) + HEARTBEAT * beats
    for content in contents:
        wire += fmt.event(TextDelta(content)) + HEARTBEAT * beats
    wire += fmt.end()
    parser = SSEParser()
    events = [e for i in range(len(wire)) for e in parser.feed(wire[i:i + 1])]
    assert events[0].event == "metadata" and events[0].retry == 3000
    assert [orjson.loads(e.data)["content"] for e in events[1:-1]] == contents
    assert [int(e.id) for e in events] == list(range(1, len(contents) + 3))
    assert events[-1].data == "[DONE]"


def test_text_is_the_text_delta_frame() -> None:
    by_text, by_event = SSEFormatter(first_id=4), SSEFormatter(first_id=4)
    for number, content in enumerate(("Hello", "", 'quote " and \n line', "\u2603"), 5):
        frame = by_text.text(content)
        assert frame == by_event.event(TextDelta(content))
        assert frame == b"id: %d\ndata: %b\n\n" % (number, orjson.dumps({"content": content}))
    assert by_text.last_id == by_event.last_id == 8



@settings(max_examples=300, deadline=None)
@given(st.text())
def test_a_text_frame_is_the_text_as_orjson_writes_it_in_an_object(content: str) -> None:
    """The text frame writes the object around the text by hand: byte for byte what
    orjson writes for the object itself."""
    assert SSEFormatter(first_id=8).text(content) == \
        b"id: 9\ndata: %b\n\n" % orjson.dumps({"content": content})

def _decoded_by_httpx_sse(wire: bytes) -> list[tuple[str, str, str | None, int | None]]:
    from httpx_sse._decoders import SSEDecoder, SSELineDecoder

    decoder, lines = SSEDecoder(), SSELineDecoder()
    events = []
    for line in [*lines.decode(wire.decode()), *lines.flush()]:
        sse = decoder.decode(line)
        if sse is not None:
            events.append((sse.event, sse.data, sse.id or None, sse.retry))
    return events


def test_the_preamble_alone_or_before_any_frame_makes_no_event() -> None:
    """A response may start with ``retry:`` and then anything: a heartbeat, the
    metadata event, or a replayed frame of a resumed stream. httpx-sse, our parser and
    sseclient-py see the delay and never an empty event."""
    import sseclient

    fmt = SSEFormatter(retry_ms=1500, first_id=6)
    starts = {
        "fresh": fmt.preamble + HEARTBEAT + SSEFormatter(1500).start({"stream_id": "s"}),
        "resumed": fmt.preamble + fmt.text("late") + HEARTBEAT + fmt.end(),
        "alone": fmt.preamble + HEARTBEAT * 3,
    }
    for name, wire in starts.items():
        decoded = _decoded_by_httpx_sse(wire)
        assert all(data for _event, data, _id, _retry in decoded), (name, decoded)
        ours = list(SSEParser().feed(wire))
        assert [e.data for e in ours] == [data for _e, data, _i, _r in decoded]
        py = [e for e in sseclient.SSEClient([wire]).events()]
        assert [e.data for e in py] == [data for _e, data, _i, _r in decoded]
        if decoded:
            assert decoded[0][3] == 1500 and ours[0].retry == 1500, name
    assert _decoded_by_httpx_sse(starts["alone"]) == []
    assert [e[2] for e in _decoded_by_httpx_sse(starts["resumed"])] == ["7", "8"]


@given(input_tokens=st.integers(-2**63, 2**64 - 1), output_tokens=st.integers(-2**63, 2**64 - 1))
def test_a_usage_frame_is_its_payload_as_orjson_writes_it(input_tokens: int,
                                                          output_tokens: int) -> None:
    usage = Usage(input_tokens, output_tokens)
    payload = orjson.dumps({"input_tokens": input_tokens, "output_tokens": output_tokens})
    assert SSEFormatter().event(usage) == b"id: 1\nevent: usage\ndata: %b\n\n" % payload
