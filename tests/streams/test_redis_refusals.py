"""With the stream store out of reach, a new resumable stream of the compatible
endpoints is refused in that API's own error shape, with Retry-After, so that each
SDK raises its own class and says why; useChat's turn gets the gateway's shape, as
its other refusals."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from sseserver.streams.redis import RETRY_AFTER
from tests.e2e.stack import Stack, request_body
from tests.streams.redis_server import free_port, needs_redis

pytestmark = needs_redis
RESUMABLE = {"x-resumable": "true"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    with Stack({"streams.store": url}) as stack:
        yield stack


def test_openai_sdk_gets_openai_shaped_503_with_retry_after(stack: Stack) -> None:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(**request_body({"tokens": 3}), stream=True,
                                       extra_headers=RESUMABLE)
    error = raised.value
    assert error.status_code == 503
    assert error.response.headers["retry-after"] == str(RETRY_AFTER)
    assert error.body == {"message": "the stream store is unreachable; retry shortly",
                          "type": "server_error", "param": None, "code": "unavailable"}
    assert "hunter2" not in error.response.text


def test_anthropic_sdk_gets_anthropic_shaped_503_with_retry_after(stack: Stack) -> None:
    client = anthropic.Anthropic(base_url=stack.url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as raised:
        client.messages.create(**request_body({"tokens": 3}), max_tokens=50, stream=True,
                               extra_headers=RESUMABLE)
    error = raised.value
    assert error.status_code == 503
    assert error.response.headers["retry-after"] == str(RETRY_AFTER)
    body = error.response.json()
    assert body["type"] == "error" and "stream store" in body["error"]["message"]
    assert body["error"]["type"] in {"overloaded_error", "api_error"}


def test_not_resumable_compatible_streams_still_work(stack: Stack) -> None:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0)
    chunks = list(client.chat.completions.create(**request_body({"tokens": 3}),
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_chat_turn_gets_503_with_retry_after(stack: Stack) -> None:
    turn = {"id": "c1", "model": "gpt-4o-mini", "trigger": "submit-message",
            "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text",
                                                                 "text": "hi"}]}]}
    answer = httpx.post(stack.url + "/v1/chat", json=turn)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == str(RETRY_AFTER)
    assert answer.json()["error"]["message"] == "the stream store is unreachable; retry shortly"
    # a resume while the store is out of reach: what runs here, else nothing (204)
    assert httpx.get(stack.url + "/v1/chat/c1/stream").status_code == 204
