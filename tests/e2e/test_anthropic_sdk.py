"""The official anthropic SDK against /v1/messages, on both provider wire formats.

``upstream`` is the wire format of the provider the gateway routes to: "anthropic"
passes the request through, "openai" translates it both ways.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.e2e.stack import Stack

UPSTREAMS = ["anthropic", "openai"]
MODEL = "claude-compat-test"


@pytest.fixture(scope="module", params=UPSTREAMS)
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 0.2, "upstream.backoff_initial": 0.01,
                "upstream.backoff_max": 0.02}, provider_kind=request.param) as s:
        yield s


def client(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url, api_key="unused", max_retries=0,
                               timeout=10)


def script(**knobs: Any) -> list[Any]:
    return [{"role": "user", "content": "#fake " + json.dumps(knobs)}]


def test_create_not_streaming(stack: Stack) -> None:
    message = client(stack).messages.create(model=MODEL, max_tokens=100,
                                            system="Be brief.", messages=script(tokens=3))
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "tok0 tok1 tok2 "  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 3 and message.usage.input_tokens > 0
    assert message.model == MODEL


def test_create_streaming_raw_events(stack: Stack) -> None:
    events = list(client(stack).messages.create(model=MODEL, max_tokens=100, stream=True,
                                                messages=script(tokens=2)))
    assert [e.type for e in events] == [
        "message_start", "content_block_start", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[0].message.id.startswith("msg_")  # type: ignore[union-attr]
    assert events[-2].delta.stop_reason == "end_turn"  # type: ignore[union-attr]


def test_stream_helper_final_message(stack: Stack) -> None:
    with client(stack).messages.stream(model=MODEL, max_tokens=100,
                                       messages=script(tokens=4)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "tok0 tok1 tok2 tok3 "
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 4


TOOLS: list[Any] = [{"name": name, "description": f"look up {name}", "input_schema": {
    "type": "object", "properties": {"q": {"type": "string"}}}} for name in ("weather", "time")]
PARALLEL = [{"name": "weather", "arguments": '{"q": "Paris"}'},
            {"name": "time", "arguments": '{"q": "Tokyo"}'}]


def test_tool_use_streamed_and_sent_back(stack: Stack) -> None:
    with client(stack).messages.stream(
            model=MODEL, max_tokens=100, tools=TOOLS, tool_choice={"type": "auto"},
            messages=script(tokens=1, tool_call=PARALLEL)) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("weather", {"q": "Paris"}),
                                                 ("time", {"q": "Tokyo"})]
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": "sunny"} for u in uses]
    second = client(stack).messages.create(
        model=MODEL, max_tokens=100, tools=TOOLS, messages=[
            *script(tokens=2), {"role": "assistant", "content": final.content},
            {"role": "user", "content": results}])
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"


def test_tool_use_not_streaming(stack: Stack) -> None:
    message = client(stack).messages.create(
        model=MODEL, max_tokens=100, tools=TOOLS,
        messages=script(tokens=0, tool_call=PARALLEL[:1]))
    assert message.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "input", None)) for b in message.content] == [
        ("tool_use", {"q": "Paris"})]


def test_thinking(stack: Stack) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    with client(stack).messages.stream(model=MODEL, max_tokens=4096, thinking=thinking,  # type: ignore[arg-type]
                                       messages=script(tokens=1, thinking=2)) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "think0 think1 "  # type: ignore[union-attr]
    whole = client(stack).messages.create(model=MODEL, max_tokens=4096, thinking=thinking,  # type: ignore[arg-type]
                                          messages=script(tokens=1, thinking=2))
    assert [b.type for b in whole.content] == ["thinking", "text"]


def test_async_client(stack: Stack) -> None:
    async def run() -> str:
        aclient = anthropic.AsyncAnthropic(base_url=stack.url, api_key="unused",
                                           max_retries=0, timeout=10)
        async with aclient, aclient.messages.stream(model=MODEL, max_tokens=100,
                                                    messages=script(tokens=3)) as stream:
            return "".join([text async for text in stream.text_stream])

    assert asyncio.run(run()) == "tok0 tok1 tok2 "


@pytest.mark.parametrize(("status", "error_class"), [
    (429, anthropic.RateLimitError), (400, anthropic.BadRequestError),
    (404, anthropic.NotFoundError), (500, anthropic.InternalServerError),
])
def test_provider_errors_raise_the_sdk_class(stack: Stack, status: int,
                                             error_class: type[Exception]) -> None:
    for stream in (False, True):
        knobs = {"tokens": 1, "fail": [status] * 3, "key": f"sdk-{status}-{stream}"}
        stack.reset_fake()
        with pytest.raises(error_class) as raised:
            client(stack).messages.create(model=MODEL, max_tokens=10, stream=stream,
                                          messages=script(**knobs))
        body = raised.value.body  # type: ignore[attr-defined]
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}


def test_gateway_refusals_are_bad_request_errors(stack: Stack) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client(stack).messages.create(model=MODEL, max_tokens=0, messages=script())


def test_failure_after_the_first_token_raises_in_the_stream(stack: Stack) -> None:
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError), client(stack).messages.stream(
            model=MODEL, max_tokens=100, messages=script(tokens=5, error_after=2)) as stream:
        texts.extend(stream.text_stream)
    assert "".join(texts) == "tok0 tok1 "
    with pytest.raises(anthropic.APIStatusError):
        client(stack).messages.create(model=MODEL, max_tokens=100,
                                      messages=script(tokens=5, error_after=2))
