"""The OpenAI and Anthropic stream formatters and the non-streaming assemblers, bytes exact."""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.compat.assemble import ChatCompletionAssembler, MessageAssembler
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
from sseserver.formats.ai_sdk import AISDKFormatter
from sseserver.formats.anthropic_messages import AnthropicMessagesFormatter
from sseserver.formats.openai_chat import OpenAIChatFormatter
from sseserver.formats.sse import SSEFormatter

META = {"stream_id": "S1", "provider": "p", "model": "m"}
TOOL_TURN: list[NormalizedEvent] = [
    ReasoningDelta("hm"), TextDelta("Hi"), ToolCallDelta(0, "call_a", "f", ""),
    ToolCallDelta(0, None, None, '{"x":'), ToolCallDelta(1, "call_b", "g", "{}"),
    ToolCallDelta(0, None, None, "1}"), Finish("tool_calls"), Usage(5, 7)]


def run(formatter: Any, events: list[NormalizedEvent]) -> bytes:
    return formatter.start(META) + b"".join(formatter.event(e) for e in events) + \
        formatter.end()


def openai_chunks(raw: bytes) -> list[Any]:
    frames = raw.split(b"\n\n")
    assert frames[-1] == b"" and frames[-2] == b"data: [DONE]"
    assert all(f.startswith(b"data: ") and b"\n" not in f for f in frames[:-1])
    return [orjson.loads(f[6:]) for f in frames[:-2]]


def test_openai_text_stream_is_the_reference_shape() -> None:
    raw = run(OpenAIChatFormatter(1700000000, include_usage=False),
              [TextDelta("Hel"), TextDelta("lo"), Finish("stop"), Usage(3, 2)])
    assert raw.split(b"\n\n")[1] == (
        b'data: {"id":"chatcmpl-S1","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,'
        b'"finish_reason":null}]}')
    chunks = openai_chunks(raw)
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


def test_openai_usage_chunk_comes_last_with_empty_choices() -> None:
    chunks = openai_chunks(run(OpenAIChatFormatter(1, include_usage=True),
                               [TextDelta("a"), Finish("stop"), Usage(3, 2)]))
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_openai_tool_calls_reasoning_and_anthropic_stop_reasons() -> None:
    chunks = openai_chunks(run(OpenAIChatFormatter(1, include_usage=False), TOOL_TURN))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[1] == {"reasoning_content": "hm"}
    assert deltas[3] == {"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                         "function": {"name": "f", "arguments": ""}}]}
    assert deltas[4] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    refused = openai_chunks(run(OpenAIChatFormatter(1, False), [Finish("refusal")]))
    assert refused[-1]["choices"][0]["finish_reason"] == "content_filter"
    unfinished = openai_chunks(run(OpenAIChatFormatter(1, False), [TextDelta("x")]))
    assert unfinished[-1]["choices"][0]["finish_reason"] == "stop"


def test_openai_failure_is_an_error_chunk_then_done() -> None:
    formatter = OpenAIChatFormatter(1, include_usage=True)
    raw = run(formatter, [TextDelta("a"), ErrorEvent("upstream_closed", "cut", True)])
    assert raw.endswith(b'data: {"error":{"message":"cut","type":"upstream_closed",'
                        b'"param":null,"code":null}}\n\ndata: [DONE]\n\n')
    assert formatter.heartbeat == b": ping\n"


def anthropic_events(raw: bytes) -> list[tuple[str, Any]]:
    events = []
    for block in raw.split(b"\n\n")[:-1]:
        event, data = block.split(b"\n")
        payload = orjson.loads(data.removeprefix(b"data: "))
        assert payload["type"] == event.removeprefix(b"event: ").decode()
        events.append((payload["type"], payload))
    return events


def test_anthropic_blocks_open_and_close_as_the_content_changes() -> None:
    events = anthropic_events(run(AnthropicMessagesFormatter(), TOOL_TURN))
    shape = [(name, p.get("index"), (p.get("content_block") or p.get("delta") or {}).get("type"))
             for name, p in events]
    assert shape == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"), ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"), ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"), ("content_block_delta", 3, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),  # a late fragment of call 0
        ("content_block_stop", 3, None), ("message_delta", None, None),
        ("message_stop", None, None)]
    assert events[0][1]["message"]["id"] == "msg_S1"
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"] == {"input_tokens": 5, "output_tokens": 7}


def test_anthropic_text_frame_and_stop_reasons() -> None:
    formatter = AnthropicMessagesFormatter()
    formatter.start(META)
    formatter.text("a")
    assert formatter.text("b\n") == (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"b\\n"}}\n\n')
    for reason, expected in [("length", "max_tokens"), ("stop", "end_turn"),
                             ("pause_turn", "pause_turn"), ("weird", "end_turn")]:
        events = anthropic_events(run(AnthropicMessagesFormatter(), [Finish(reason)]))
        assert events[-2][1]["delta"]["stop_reason"] == expected


def test_anthropic_failure_is_an_error_event_and_nothing_after() -> None:
    raw = run(AnthropicMessagesFormatter(), [TextDelta("a"), ErrorEvent(
        "upstream_timeout", "slow", True)])
    assert raw.endswith(b'event: error\ndata: {"type":"error","error":{"type":'
                        b'"timeout_error","message":"slow"}}\n\n')


def test_chat_completion_assembled() -> None:
    assembler = ChatCompletionAssembler(9)
    run(assembler, TOOL_TURN)
    status, body = assembler.response()
    assert status == 200 and body["object"] == "chat.completion" and body["created"] == 9
    message = body["choices"][0]["message"]
    assert message["content"] == "Hi" and message["reasoning_content"] == "hm"
    assert [(c["id"], c["function"]["arguments"]) for c in message["tool_calls"]] == [
        ("call_a", '{"x":1}'), ("call_b", "{}")]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}


def test_message_assembled_in_block_order() -> None:
    assembler = MessageAssembler(9)
    run(assembler, TOOL_TURN)
    status, body = assembler.response()
    assert status == 200 and body["stop_reason"] == "tool_use"
    assert body["content"] == [
        {"type": "thinking", "thinking": "hm", "signature": ""},
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
        {"type": "tool_use", "id": "call_b", "name": "g", "input": {}}]


def test_assembled_failures_are_error_statuses() -> None:
    # an overloaded provider (529) in each API's own status
    for assembler, shape, expected in [(ChatCompletionAssembler(1), "error", 503),
                                       (MessageAssembler(1), "type", 529)]:
        run(assembler, [TextDelta("a"), ErrorEvent("provider_error", "boom", False, 529)])
        status, body = assembler.response()
        assert status == expected and shape in body
    broken = MessageAssembler(1)
    run(broken, [ToolCallDelta(0, "t", "f", "{not json")])
    assert broken.response()[0] == 502


# Two signed thinking blocks around a redacted one, then text stopped by a stop sequence.
SIGNED_TURN: list[NormalizedEvent] = [
    ReasoningDelta("a"), ReasoningDelta("b"), ReasoningSignature("sig1"),
    RedactedReasoning("opaque=="), ReasoningDelta("c"), ReasoningSignature("sig2"),
    TextDelta("Hi"), Finish("stop", "END"), Usage(5, 7)]


def test_anthropic_signatures_redacted_blocks_and_the_stop_sequence() -> None:
    events = anthropic_events(run(AnthropicMessagesFormatter(), SIGNED_TURN))
    shape = [(name, p.get("index"), (p.get("content_block") or p.get("delta") or {}).get("type"))
             for name, p in events]
    assert shape == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"), ("content_block_stop", 0, None),
        ("content_block_start", 1, "redacted_thinking"), ("content_block_stop", 1, None),
        ("content_block_start", 2, "thinking"), ("content_block_delta", 2, "thinking_delta"),
        ("content_block_delta", 2, "signature_delta"), ("content_block_stop", 2, None),
        ("content_block_start", 3, "text"), ("content_block_delta", 3, "text_delta"),
        ("content_block_stop", 3, None), ("message_delta", None, None),
        ("message_stop", None, None)]
    assert events[4][1]["delta"] == {"type": "signature_delta", "signature": "sig1"}
    assert events[6][1]["content_block"] == {"type": "redacted_thinking", "data": "opaque=="}
    assert events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_message_assembled_with_signatures_and_the_stop_sequence() -> None:
    assembler = MessageAssembler(9)
    run(assembler, SIGNED_TURN)
    status, body = assembler.response()
    assert status == 200
    assert body["content"] == [
        {"type": "thinking", "thinking": "ab", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "opaque=="},
        {"type": "thinking", "thinking": "c", "signature": "sig2"},
        {"type": "text", "text": "Hi"}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "END")


def test_formats_that_take_no_reasoning_back_show_nothing_for_it() -> None:
    """The default format's wire is unchanged; Chat Completions gets the plain stop."""
    opaque = [ReasoningSignature("sig"), RedactedReasoning("data")]
    for formatter in (SSEFormatter(), OpenAIChatFormatter(1, False), AISDKFormatter()):
        formatter.start(META)
        assert [formatter.event(event) for event in opaque] == [b"", b""]
    assert SSEFormatter().event(Finish("stop", "END")) == b""
    chunks = openai_chunks(run(OpenAIChatFormatter(1, False), SIGNED_TURN))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    chat = ChatCompletionAssembler(1)
    run(chat, SIGNED_TURN)
    assert chat.response()[1]["choices"][0]["message"]["reasoning_content"] == "abc"
