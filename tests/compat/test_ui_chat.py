"""DefaultChatTransport bodies (POST /v1/chat) as generation requests."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sseserver.compat.ui_chat import parse_ui_chat
from sseserver.errors import RequestError


def body(**fields: Any) -> bytes:
    return orjson.dumps({"id": "chat", "trigger": "submit-message", "messageId": None,
                         "model": "m", **fields})


def test_ui_messages_become_a_chat_completions_conversation() -> None:
    turn = parse_ui_chat(body(system="sys", max_tokens=50, messages=[
        {"id": "1", "role": "user", "parts": [
            {"type": "text", "text": "look "}, {"type": "text", "text": "here"},
            {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AA"}]},
        {"id": "2", "role": "assistant", "parts": [
            {"type": "step-start"}, {"type": "reasoning", "text": "hm"},
            {"type": "text", "text": "calling"},
            {"type": "tool-f", "toolCallId": "c1", "state": "output-available",
             "input": {"a": 1}, "output": {"ok": True}},
            {"type": "dynamic-tool", "toolName": "g", "toolCallId": "c2",
             "state": "output-error", "input": {}, "errorText": "boom"},
            {"type": "tool-h", "toolCallId": "c3", "state": "input-available", "input": {}},
            {"type": "step-start"}, {"type": "text", "text": "done"},
            {"type": "data-weather", "data": {}}]},
        {"id": "3", "role": "user", "parts": [{"type": "text", "text": "thanks"}]}]))
    assert turn.chat_id == "chat"
    generation = turn.generation
    assert generation.format == "ai-sdk" and generation.resumable
    assert generation.native is not None and generation.native.format == "openai"
    chat = generation.native.body
    assert chat["max_completion_tokens"] == 50
    assert chat["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [
            {"type": "text", "text": "look "}, {"type": "text", "text": "here"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"ok":true}'},
        {"role": "tool", "tool_call_id": "c2", "content": "Error: boom"},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "thanks"}]


@pytest.mark.parametrize(("fields", "message"), [
    ({"model": None}, "'model' is required"), ({"id": "a/b"}, "'id'"),
    ({"messages": []}, "'messages'"), ({"color": "red"}, "unknown field"),
    ({"messages": [{"role": "user"}]}, "UI message"),
    ({"messages": [{"role": "tool", "parts": []}]}, "role"),
])
def test_chat_bodies_the_gateway_refuses(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse_ui_chat(body(**{"messages": [{"role": "user", "parts": []}], **fields}))
