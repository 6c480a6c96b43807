"""Request translation between the two wire formats, and pass-through within one."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sseserver.compat.requests import parse_chat_request, parse_messages_request
from sseserver.compat.to_anthropic import messages_body_from_chat
from sseserver.compat.to_openai import chat_body_from_messages
from sseserver.config import ProviderSettings
from sseserver.errors import RequestError
from sseserver.providers.anthropic import AnthropicProvider
from sseserver.providers.openai import OpenAIProvider


def _build(provider: str, generation: Any, model: str) -> dict[str, Any]:
    settings = ProviderSettings(name=provider, kind=provider, base_url="http://x/v1")
    cls = OpenAIProvider if provider == "openai" else AnthropicProvider
    return orjson.loads(cls(settings).build_request(generation, model).body)


def chat_upstream(provider: str, **fields: Any) -> dict[str, Any]:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], **fields}
    return _build(provider, parse_chat_request(orjson.dumps(body)).generation, "m")


def messages_upstream(provider: str, **fields: Any) -> dict[str, Any]:
    body = {"model": "claude", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}], **fields}
    return _build(provider, parse_messages_request(orjson.dumps(body)).generation, "m")


def test_same_format_passes_every_field_through() -> None:
    sent = chat_upstream("openai", seed=3, logit_bias={"5": 1}, store=True, stream=False,
                         stream_options={"include_obfuscation": False})
    assert sent["seed"] == 3 and sent["logit_bias"] == {"5": 1} and sent["store"] is True
    assert sent["model"] == "m" and sent["stream"] is True
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    sent = messages_upstream("anthropic", top_k=4, service_tier="auto",
                             system=[{"type": "text", "text": "s", "cache_control": {}}])
    assert sent["top_k"] == 4 and sent["service_tier"] == "auto" and sent["stream"] is True
    assert sent["system"][0]["cache_control"] == {}


def test_chat_to_messages_maps_the_conversation() -> None:
    body = {"model": "gpt", "messages": [
        {"role": "system", "content": "sys"},
        {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "f", "arguments": '{"a": 1}'}},
            {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "one"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "two"}]},
    ]}
    sent = messages_body_from_chat(body, "claude")
    assert sent["system"] == "sys\n\ndev"
    assert sent["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "AAAA"}}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
            {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "two"}]}]
    assert sent["max_tokens"] == 4096 and sent["stream"] is True


def test_chat_to_messages_maps_the_options() -> None:
    sent = chat_upstream(
        "anthropic", max_completion_tokens=9000, temperature=0.5, top_p=0.9, stop="END",
        user="u1", reasoning_effort="medium", response_format={"type": "text"},
        parallel_tool_calls=False, tool_choice={"type": "function", "function": {"name": "f"}},
        tools=[{"type": "function", "function": {"name": "f", "description": "d",
                                                 "parameters": {"type": "object"}}}])
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (9000, 0.5, 0.9)
    assert sent["stop_sequences"] == ["END"] and sent["metadata"] == {"user_id": "u1"}
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert sent["tools"] == [{"name": "f", "description": "d",
                              "input_schema": {"type": "object"}}]
    assert sent["tool_choice"] == {"type": "tool", "name": "f",
                                   "disable_parallel_tool_use": True}
    assert chat_upstream("anthropic", tool_choice="required")["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize(("fields", "named"), [
    ({"seed": 1}, "'seed'"), ({"logprobs": True}, "'logprobs'"),
    ({"frequency_penalty": 0.1}, "'frequency_penalty'"), ({"temperature": 1.5}, "temperature"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"metadata": {"team": "a"}}, "metadata"),
    ({"reasoning_effort": "low", "max_completion_tokens": 500}, "reasoning_effort"),
    ({"tools": [{"type": "function", "function": {"name": "f", "strict": True}}]}, "strict"),
    ({"messages": [{"role": "user", "content": "hi", "name": "bob"}]}, "messages[0].name"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "messages[0].content[0]"),
])
def test_chat_fields_without_an_anthropic_equivalent_are_refused(
        fields: dict[str, Any], named: str) -> None:
    with pytest.raises(RequestError, match=named.replace("[", r"\[")) as refused:
        chat_upstream("anthropic", **fields)
    assert refused.value.status == 400


def test_messages_to_chat_maps_the_conversation() -> None:
    body = {"model": "claude", "max_tokens": 100,
            "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "q"}, {
                    "type": "image", "source": {"type": "url", "url": "https://i/x.png"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r",
                     "is_error": True},
                    {"type": "text", "text": "go on"}]}]}
    sent = chat_body_from_messages(body, "gpt")
    assert sent["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "q"}, {
            "type": "image_url", "image_url": {"url": "https://i/x.png"}}]},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "f", "arguments": '{"a":1}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: r"},
        {"role": "user", "content": [{"type": "text", "text": "go on"}]}]
    assert sent["max_completion_tokens"] == 100


def test_messages_to_chat_maps_the_options() -> None:
    sent = messages_upstream(
        "openai", temperature=0.2, top_p=0.5, stop_sequences=["X"],
        metadata={"user_id": "u"}, thinking={"type": "enabled", "budget_tokens": 20000},
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        tools=[{"name": "f", "input_schema": {"type": "object"}}])
    assert (sent["temperature"], sent["top_p"], sent["stop"]) == (0.2, 0.5, ["X"])
    assert sent["user"] == "u" and sent["reasoning_effort"] == "high"
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object"}}}]
    assert sent["stream_options"] == {"include_usage": True}
    adaptive = messages_upstream("openai", thinking={"type": "adaptive"})
    assert adaptive["reasoning_effort"] == "medium"


@pytest.mark.parametrize(("fields", "named"), [
    ({"top_k": 3}, "'top_k'"), ({"service_tier": "auto"}, "'service_tier'"),
    ({"metadata": {"other": 1}}, "metadata"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools"),
    ({"messages": [{"role": "user", "content": [{"type": "document"}]}]},
     r"messages\[0\].content\[0\]"),
])
def test_messages_fields_without_an_openai_equivalent_are_refused(
        fields: dict[str, Any], named: str) -> None:
    with pytest.raises(RequestError, match=named):
        messages_upstream("openai", **fields)


@pytest.mark.parametrize(("body", "message"), [
    (b"[1]", "JSON object"), (b'{"messages": []}', "'model' is required"),
    (b'{"model": "m", "messages": []}', "non-empty array"),
    (b'{"model": "m", "messages": [{"role": "robot", "content": ""}]}', "role"),
    (b'{"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}', "'n' must be 1"),
    (b'{"model": "m", "stream_options": {"include_usage": true}, '
     b'"messages": [{"role": "user", "content": "x"}]}', "only allowed with 'stream'"),
])
def test_chat_requests_the_gateway_refuses(body: bytes, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse_chat_request(body)


def test_messages_requests_need_max_tokens_and_anthropic_roles() -> None:
    with pytest.raises(RequestError, match="'max_tokens' is required"):
        parse_messages_request(b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}')
    with pytest.raises(RequestError, match="role"):
        parse_messages_request(b'{"model": "m", "max_tokens": 5, '
                               b'"messages": [{"role": "system", "content": "x"}]}')
