"""Requests of the compatible endpoints (Chat Completions, Messages) sent to Gemini and
Bedrock providers: tools, temperature and system text reach them; a tool-call history,
which has no mapping yet, is refused rather than dropped."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sseserver.compat.requests import parse_chat_request, parse_messages_request
from sseserver.errors import RequestError
from sseserver.providers.bedrock import converse_body
from sseserver.providers.gemini import gemini_body

TOOL = {"type": "function", "function": {"name": "w", "description": "weather",
                                         "parameters": {"type": "object"}}}


def chat(**fields: Any) -> Any:
    return parse_chat_request(orjson.dumps({
        "model": "m", "stream": True, "messages": [
            {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
        **fields})).generation


def test_a_chat_completions_request_to_gemini() -> None:
    body = gemini_body(chat(tools=[TOOL], temperature=0.5, max_completion_tokens=7))
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
    assert body["generationConfig"] == {"maxOutputTokens": 7, "temperature": 0.5}
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "w", "description": "weather", "parameters": {"type": "object"}}]}]


def test_a_messages_request_to_bedrock() -> None:
    request = parse_messages_request(orjson.dumps({
        "model": "m", "max_tokens": 9, "temperature": 0.1,
        "system": [{"type": "text", "text": "Be terse."}],
        "tools": [{"name": "w", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})).generation
    body = converse_body(request)
    assert body["system"] == [{"text": "Be terse."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 9, "temperature": 0.1}
    assert body["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "w", "inputSchema": {"json": {"type": "object"}}}}]}


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "Hi"},
     {"role": "assistant", "content": None, "tool_calls": [
         {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
     {"role": "user", "content": "and?"}],
])
def test_a_tool_call_history_is_refused(messages: list[dict[str, Any]]) -> None:
    request = parse_chat_request(orjson.dumps({"model": "m", "messages": messages})).generation
    for build in (gemini_body, converse_body):
        with pytest.raises(RequestError, match="tool calls"):
            build(request)


def test_anthropic_tool_blocks_are_refused() -> None:
    request = parse_messages_request(orjson.dumps({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "w",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                      "content": "sunny"}]}]})).generation
    with pytest.raises(RequestError, match="tool calls"):
        gemini_body(request)


def test_bad_native_fields_are_clear_errors() -> None:
    with pytest.raises(RequestError, match="tools"):
        gemini_body(chat(tools="x"))
    with pytest.raises(RequestError, match="temperature"):
        converse_body(chat(temperature="hot"))
