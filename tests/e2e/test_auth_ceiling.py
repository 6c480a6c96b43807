"""A key's ``max_tokens`` ceiling on every route that starts a generation: a request
that states no max_tokens is sent upstream with the ceiling, one that states more is
refused (403) in the endpoint's shape. The provider is a raw loopback server that keeps
each request body, so the test reads what reached it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

import sseserver
from sseserver.core.auth import hash_key
from tests.e2e.raw_upstream import LAST_CHUNK, RawUpstream, chunk, head
from tests.e2e.stack import Stack

CAPPED_KEY = "gw-capped-Jd7Ycanary3Vb"
SECRET = "token-secret-ceiling-" + "5" * 16
CEILING = 50
OPENAI_STREAM = [head(), chunk(
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
    b'"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'), LAST_CHUNK]


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream(OPENAI_STREAM) as raw:
        yield raw


@pytest.fixture(scope="module")
def stack(upstream: RawUpstream) -> Iterator[Stack]:
    toml = (f'[auth]\ntoken_secret = "{SECRET}"\n'
            f'[auth.keys.capped]\nhash = "{hash_key(CAPPED_KEY)}"\nmax_tokens = {CEILING}\n'
            f'[providers.rawopenai]\nkind = "openai"\nbase_url = "{upstream.url}/v1"\n'
            f'api_key = "sk-raw"\n'
            f'[providers.rawanthropic]\nkind = "anthropic"\nbase_url = "{upstream.url}"\n'
            f'api_key = "sk-raw"\n')
    with Stack({"upstream.max_retries": 0}, toml=toml) as s:
        yield s


def sent_upstream(stack: Stack, upstream: RawUpstream, path: str, body: dict[str, Any],
                  credential: str = CAPPED_KEY) -> tuple[httpx.Response, dict[str, Any]]:
    """The answer to ``body`` and the body the provider received."""
    before = len(upstream.bodies)
    response = httpx.post(stack.url + path, json=body, timeout=10,
                          headers={"authorization": f"Bearer {credential}"})
    assert len(upstream.bodies) == before + 1, response.text
    return response, orjson.loads(upstream.bodies[-1])


HI = [{"role": "user", "content": "hi"}]


def test_v1_stream_without_max_tokens_goes_with_the_ceiling(
        stack: Stack, upstream: RawUpstream) -> None:
    response, sent = sent_upstream(stack, upstream, "/v1/stream",
                                   {"model": "m", "provider": "rawopenai", "messages": HI})
    assert response.status_code == 200 and "hi" in response.text
    assert sent["max_completion_tokens"] == CEILING


def test_chat_completions_without_max_tokens_goes_with_the_ceiling(
        stack: Stack, upstream: RawUpstream) -> None:
    response, sent = sent_upstream(stack, upstream, "/v1/chat/completions",
                                   {"model": "rawopenai/m", "messages": HI, "stream": True})
    assert response.status_code == 200 and "[DONE]" in response.text
    assert sent["max_completion_tokens"] == CEILING and "max_tokens" not in sent


def test_chat_completions_to_an_anthropic_provider_carries_the_ceiling(
        stack: Stack, upstream: RawUpstream) -> None:
    _, sent = sent_upstream(stack, upstream, "/v1/chat/completions",
                            {"model": "rawanthropic/m", "messages": HI, "stream": True})
    assert sent["max_tokens"] == CEILING


def test_use_chat_without_max_tokens_goes_with_the_ceiling(
        stack: Stack, upstream: RawUpstream) -> None:
    turn = {"id": "chat-ceiling", "model": "rawopenai/m", "messages": [
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}
    response, sent = sent_upstream(stack, upstream, "/v1/chat", turn)
    assert response.status_code == 200
    assert sent["max_completion_tokens"] == CEILING


def test_a_token_with_a_lower_ceiling_sends_its_own(stack: Stack, upstream: RawUpstream
                                                   ) -> None:
    token = sseserver.mint_token(SECRET, "capped", max_tokens=7)
    _, sent = sent_upstream(stack, upstream, "/v1/stream",
                            {"model": "m", "provider": "rawopenai", "messages": HI}, token)
    assert sent["max_completion_tokens"] == 7


def test_a_stated_max_tokens_under_the_ceiling_is_kept(stack: Stack, upstream: RawUpstream
                                                      ) -> None:
    _, sent = sent_upstream(stack, upstream, "/v1/chat/completions",
                            {"model": "rawopenai/m", "messages": HI, "stream": True,
                             "max_tokens": 9})
    assert sent["max_tokens"] == 9 and "max_completion_tokens" not in sent


@pytest.mark.parametrize(("path", "body", "error_type"), [
    ("/v1/stream", {"model": "m", "provider": "rawopenai", "max_tokens": CEILING + 1},
     "permission_error"),
    ("/v1/chat/completions", {"model": "rawopenai/m", "max_completion_tokens": CEILING + 1},
     "permission_error"),
    ("/v1/messages", {"model": "rawanthropic/m", "max_tokens": CEILING + 1},
     "permission_error"),
    ("/v1/chat", {"id": "c", "model": "rawopenai/m", "max_tokens": CEILING + 1},
     "permission_error"),
])
def test_more_than_the_ceiling_is_403_in_the_endpoints_shape(
        stack: Stack, upstream: RawUpstream, path: str, body: dict[str, Any],
        error_type: str) -> None:
    before = len(upstream.bodies)
    messages = [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}] \
        if path == "/v1/chat" else HI
    response = httpx.post(stack.url + path, json={**body, "messages": messages},
                          headers={"x-api-key": CAPPED_KEY}, timeout=10)
    assert response.status_code == 403, response.text
    payload = response.json()
    error = payload["error"]
    assert error["type"] == error_type and f"at most {CEILING}" in error["message"]
    if path == "/v1/messages":
        assert payload["type"] == "error"  # Anthropic's shape
    assert len(upstream.bodies) == before


def test_use_chat_keeps_a_stated_max_tokens_under_the_ceiling(
        stack: Stack, upstream: RawUpstream) -> None:
    turn = {"id": "chat-stated", "model": "rawopenai/m", "max_tokens": 9, "messages": [
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}
    response, sent = sent_upstream(stack, upstream, "/v1/chat", turn)
    assert response.status_code == 200 and sent["max_completion_tokens"] == 9
