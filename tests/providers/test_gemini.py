"""The Gemini adapter on hand-made chunks: request, events, errors, usage."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sseserver.config import ProviderSettings, load_config
from sseserver.errors import ProviderError, RequestError
from sseserver.events import ErrorEvent, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from sseserver.providers.gemini import GeminiAdapter, GeminiProvider
from sseserver.providers.registry import make_provider
from sseserver.schema import parse_generation_request

KEY = "AIzaSyFakeKey0123456789abcdefghijklmnop"


def provider(base: str = "https://generativelanguage.googleapis.com") -> GeminiProvider:
    return GeminiProvider(ProviderSettings("gem", "gemini", base, KEY))


def chunk(parts: list[dict[str, Any]] | None = None, **candidate: Any) -> str:
    body: dict[str, Any] = {"candidates": [{"content": {"parts": parts or [], "role": "model"},
                                            **candidate}]}
    return orjson.dumps(body).decode()


def test_request_url_header_and_body() -> None:
    request = parse_generation_request(orjson.dumps({
        "model": "gemini-2.5-flash", "system": "Be terse.", "max_tokens": 50,
        "temperature": 0.3,
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"},
                     {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}],
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {
            "type": "object"}}}]}))
    upstream = provider().build_request(request, "gemini-2.5-flash")
    assert upstream.url == ("https://generativelanguage.googleapis.com/v1beta/models/"
                            "gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert KEY not in upstream.url and KEY not in repr(upstream)
    assert ("x-goog-api-key", KEY) in upstream.headers
    assert orjson.loads(upstream.body) == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]},
                     {"role": "model", "parts": [{"text": "Yo"}]},
                     {"role": "user", "parts": [{"text": "Weather?"}]}],
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.3},
        "tools": [{"functionDeclarations": [{"name": "w", "parameters": {"type": "object"}}]}]}


def test_a_base_with_its_version_and_an_odd_model_name() -> None:
    request = parse_generation_request(b'{"model": "m", "messages": [{"role": "user", '
                                       b'"content": "x"}]}')
    url = provider("https://proxy.example/v1beta").build_request(request, "models/a b?c").url
    assert url == "https://proxy.example/v1beta/models/a%20b%3Fc:streamGenerateContent?alt=sse"
    with pytest.raises(RequestError):
        provider().build_request(parse_generation_request(
            b'{"model": "m", "messages": [{"role": "tool", "content": "x"}]}'), "m")


def test_text_thought_and_function_call_parts() -> None:
    adapter = GeminiAdapter()
    assert adapter.feed_message(chunk([{"text": "Hel"}])) == "Hel"
    events = adapter.feed("message", chunk([
        {"text": "plan", "thought": True}, {"text": "lo"},
        {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "x"},
        {"functionCall": {"name": "g", "id": "given"}}]))
    assert events[:2] == [ReasoningDelta("plan"), TextDelta("lo")]
    first, second = events[2:]
    assert type(first) is ToolCallDelta and first.index == 0 and first.name == "f"
    assert first.arguments == '{"a":1}' and first.id and first.id.startswith("call_")
    assert second == ToolCallDelta(1, "given", "g", "{}")
    assert not adapter.finished


def test_a_stream_cut_after_bad_counts_reports_no_usage() -> None:
    adapter = GeminiAdapter()
    adapter.feed_message(orjson.dumps({"candidates": [{"content": {"parts": [{"text": "a"}]}}],
                                       "usageMetadata": {"promptTokenCount": "4"}}).decode())
    assert adapter.usage_so_far() is None
    with pytest.raises(ProviderError):
        adapter.feed_message(chunk([{"text": "b"}], index=False))


def test_finish_and_usage_with_thoughts() -> None:
    adapter = GeminiAdapter()
    adapter.feed_message(orjson.dumps({"candidates": [{"content": {"parts": [{"text": "a"}]}}],
                                       "usageMetadata": {"promptTokenCount": 4}}).decode())
    assert adapter.usage_so_far() == Usage(4, 0)
    events = adapter.feed("message", orjson.dumps({
        "candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2,
                          "thoughtsTokenCount": 10}}).decode())
    assert events == [TextDelta("b"), Finish("length"), Usage(5, 12)]
    assert adapter.finished


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT",
                                    "SPII", "MALFORMED_FUNCTION_CALL", "OTHER", "NEW_ONE"])
def test_a_cut_reply_is_an_error_after_its_text(reason: str) -> None:
    events = GeminiAdapter().feed("message", chunk([{"text": "partial"}], finishReason=reason))
    assert events[0] == TextDelta("partial")
    error = events[1]
    assert type(error) is ErrorEvent and error.type == reason.lower()
    assert reason in error.message and not error.retryable


def test_a_blocked_prompt_is_an_error() -> None:
    events = GeminiAdapter().feed("message", '{"promptFeedback": {"blockReason": "SAFETY"}}')
    assert events == [ErrorEvent("prompt_blocked", "Gemini blocked the prompt: SAFETY",
                                 retryable=False, status=400)]


@pytest.mark.parametrize(("error", "status", "retryable"), [
    ({"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}, 503, True),
    ({"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}, 429, True),
    ({"message": "bad", "status": "INVALID_ARGUMENT"}, 400, False),
    ({"message": "?"}, None, False),
])
def test_a_mid_stream_error(error: dict[str, Any], status: int | None,
                            retryable: bool) -> None:
    (event,) = GeminiAdapter().feed("message", orjson.dumps({"error": error}).decode())
    assert type(event) is ErrorEvent and event.status == status
    assert event.retryable is retryable and event.message == error["message"]


@pytest.mark.parametrize("data", [
    "[]", '{"candidates": {}}', '{"candidates": [{"content": {"parts": "x"}}]}',
    '{"candidates": [{"content": {"parts": [{"text": 5}]}}]}',
    '{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": []}}]}}]}',
    '{"candidates": [{"finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": -1}}',
    "{not json",
])
def test_wrong_shapes_are_provider_errors(data: str) -> None:
    with pytest.raises(ProviderError):
        GeminiAdapter().feed("message", data)


@pytest.mark.parametrize(("status", "body", "retryable"), [
    (429, {"error": {"code": 429, "message": "Resource exhausted",
                     "status": "RESOURCE_EXHAUSTED"}}, True),
    (503, {"error": {"code": 503, "message": "The model is overloaded.",
                     "status": "UNAVAILABLE"}}, True),
    (403, {"error": {"code": 403, "message": f"key {KEY} denied",
                     "status": "PERMISSION_DENIED"}}, False),
])
def test_error_bodies(status: int, body: dict[str, Any], retryable: bool) -> None:
    error = provider().map_error(status, {}, orjson.dumps(body))
    assert error.status == status and error.retryable is retryable
    assert body["error"]["message"].split()[0] in str(error) and KEY not in str(error)


def test_config_from_the_sdk_variables() -> None:
    config = load_config(env={"GEMINI_API_KEY": "gem-key-123456789"})
    (gemini,) = config.providers
    assert (gemini.name, gemini.kind, gemini.api_key) == ("gemini", "gemini",
                                                          "gem-key-123456789")
    assert gemini.base_url == "https://generativelanguage.googleapis.com"
    both = load_config(env={"GEMINI_API_KEY": "a" * 12, "GOOGLE_API_KEY": "b" * 12})
    assert both.providers[0].api_key == "b" * 12  # google-genai's precedence
    assert type(make_provider(gemini)) is GeminiProvider


def test_gemini_model_names_reach_the_gemini_provider_without_a_routing_table() -> None:
    from tests.test_routing import gateway, route

    gw = gateway({"OPENAI_API_KEY": "sk-test", "GEMINI_API_KEY": "gm-test-key-1234"})
    assert route(gw, "gemini-2.5-flash") == [("gemini", "gemini-2.5-flash")]
    assert route(gw, "gpt-4o-mini") == [("openai", "gpt-4o-mini")]
