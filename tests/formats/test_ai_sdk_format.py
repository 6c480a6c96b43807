"""The AI SDK UI message stream formatter, bytes exact."""

from __future__ import annotations

import orjson

from sseserver.events import ErrorEvent, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from sseserver.formats.ai_sdk import AISDKFormatter


def parts(raw: bytes) -> list[dict[str, object]]:
    frames = raw.split(b"\n\n")
    assert frames[-2:] == [b"data: [DONE]", b""]
    return [orjson.loads(f.removeprefix(b"data: ")) for f in frames[:-2]]


def test_runs_open_and_close_and_tools_end_the_step() -> None:
    formatter = AISDKFormatter()
    raw = formatter.start({"stream_id": "S", "model": "m", "provider": "p"}) + b"".join(
        formatter.event(e) for e in [
            ReasoningDelta("r"), TextDelta("a"), TextDelta("b"),
            ToolCallDelta(0, "call_1", "f", ""), ToolCallDelta(0, None, None, '{"x": 1}'),
            ToolCallDelta(1, "call_2", "g", "not json"), Finish("tool_calls"), Usage(1, 2)]
    ) + formatter.end()
    assert parts(raw) == [
        {"type": "start", "messageId": "msg_S"}, {"type": "start-step"},
        {"type": "reasoning-start", "id": "reasoning-1"},
        {"type": "reasoning-delta", "id": "reasoning-1", "delta": "r"},
        {"type": "reasoning-end", "id": "reasoning-1"},
        {"type": "text-start", "id": "text-2"},
        {"type": "text-delta", "id": "text-2", "delta": "a"},
        {"type": "text-delta", "id": "text-2", "delta": "b"},
        {"type": "text-end", "id": "text-2"},
        {"type": "tool-input-start", "toolCallId": "call_1", "toolName": "f"},
        {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": '{"x": 1}'},
        {"type": "tool-input-start", "toolCallId": "call_2", "toolName": "g"},
        {"type": "tool-input-delta", "toolCallId": "call_2", "inputTextDelta": "not json"},
        {"type": "tool-input-available", "toolCallId": "call_1", "toolName": "f",
         "input": {"x": 1}},
        {"type": "tool-input-available", "toolCallId": "call_2", "toolName": "g",
         "input": "not json"},
        {"type": "finish-step"}, {"type": "finish"}]


def test_text_delta_frame_and_failure() -> None:
    formatter = AISDKFormatter()
    formatter.text("a")
    assert formatter.text("b\n") == b'data: {"type":"text-delta","id":"text-1","delta":"b\\n"}\n\n'
    failed = formatter.event(ErrorEvent("upstream_closed", "cut", True)) + formatter.end()
    assert failed == (b'data: {"type":"text-end","id":"text-1"}\n\n'
                      b'data: {"type":"error","errorText":"cut"}\n\ndata: [DONE]\n\n')
    assert formatter.heartbeat == b": ping\n"
