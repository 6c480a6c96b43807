"""The official openai SDK against /v1/chat/completions, on both provider wire formats.

``upstream`` is the wire format of the provider the gateway routes to: "openai" passes
the request through, "anthropic" translates it both ways.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.stack import Stack

UPSTREAMS = ["openai", "anthropic"]


@pytest.fixture(scope="module", params=UPSTREAMS)
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 0.2, "upstream.backoff_initial": 0.01,
                "upstream.backoff_max": 0.02}, provider_kind=request.param) as s:
        yield s


def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0,
                         timeout=10)


def script(**knobs: Any) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "#fake " + json.dumps(knobs)}]


def test_create_not_streaming(stack: Stack) -> None:
    completion = client(stack).chat.completions.create(
        model="gpt-4o-mini", messages=script(tokens=3), max_completion_tokens=100)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "tok0 tok1 tok2 "
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert completion.model == "gpt-4o-mini"


def test_create_streaming_text(stack: Stack) -> None:
    chunks = list(client(stack).chat.completions.create(
        model="gpt-4o-mini", messages=script(tokens=3), stream=True))
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2 "
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_include_usage_adds_the_usage_chunk(stack: Stack) -> None:
    chunks = list(client(stack).chat.completions.create(
        model="gpt-4o-mini", messages=script(tokens=2, usage={"input_tokens": 7,
                                                               "output_tokens": 2}),
        stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    usage = chunks[-1].usage
    assert usage.completion_tokens == 2 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_stream_helper_final_completion(stack: Stack) -> None:
    with client(stack).chat.completions.stream(
            model="gpt-4o-mini", messages=script(tokens=4)) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == "tok0 tok1 tok2 tok3 "
    assert final.choices[0].message.content == "tok0 tok1 tok2 tok3 "
    assert final.choices[0].finish_reason == "stop"


TOOLS: list[Any] = [{"type": "function", "function": {
    "name": name, "description": f"look up {name}",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
    for name in ("weather", "time")]
PARALLEL = [{"name": "weather", "arguments": '{"q": "Paris"}'},
            {"name": "time", "arguments": '{"q": "Tokyo"}'}]


def test_parallel_tool_calls_assembled_by_the_sdk(stack: Stack) -> None:
    with client(stack).chat.completions.stream(
            model="gpt-4o-mini", messages=script(tokens=1, tool_call=PARALLEL),
            tools=TOOLS, tool_choice="auto") as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("weather", {"q": "Paris"}), ("time", {"q": "Tokyo"})]
    assert all(c.id for c in calls) and len({c.id for c in calls}) == 2


def test_tool_calls_not_streaming_and_the_tool_results_sent_back(stack: Stack) -> None:
    first = client(stack).chat.completions.create(
        model="gpt-4o-mini", messages=script(tokens=0, tool_call=PARALLEL), tools=TOOLS)
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in message.tool_calls or []] == ["weather", "time"]
    results = [{"role": "tool", "tool_call_id": c.id, "content": "sunny"}
               for c in message.tool_calls or []]
    second = client(stack).chat.completions.create(
        model="gpt-4o-mini", tools=TOOLS,
        messages=[*script(tokens=2), message.model_dump(exclude_none=True), *results])
    # the fake scripts by the last user turn: on Anthropic that is the tool results
    assert second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop"


def test_reasoning_arrives_as_reasoning_content(stack: Stack) -> None:
    chunks = list(client(stack).chat.completions.create(
        model="gpt-4o-mini", messages=script(tokens=1, thinking=2), stream=True,
        reasoning_effort="low"))
    reasoning = [getattr(c.choices[0].delta, "reasoning_content", None)
                 for c in chunks if c.choices]
    assert "".join(r for r in reasoning if r) == "think0 think1 "
    whole = client(stack).chat.completions.create(
        model="gpt-4o-mini", messages=script(tokens=1, thinking=2))
    assert getattr(whole.choices[0].message, "reasoning_content", None) == "think0 think1 "


def test_async_client_streaming_and_not(stack: Stack) -> None:
    async def run() -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=stack.url + "/v1", api_key="unused",
                                      max_retries=0, timeout=10) as aclient:
            stream = await aclient.chat.completions.create(
                model="gpt-4o-mini", messages=script(tokens=3), stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream
                            if c.choices])
            whole = await aclient.chat.completions.create(
                model="gpt-4o-mini", messages=script(tokens=2))
            return text, whole.choices[0].message.content or ""

    assert asyncio.run(run()) == ("tok0 tok1 tok2 ", "tok0 tok1 ")


@pytest.mark.parametrize(("status", "error_class"), [
    (429, openai.RateLimitError), (400, openai.BadRequestError),
    (404, openai.NotFoundError), (500, openai.InternalServerError),
])
def test_provider_errors_raise_the_sdk_class(stack: Stack, status: int,
                                             error_class: type[Exception]) -> None:
    for stream in (False, True):
        knobs = {"tokens": 1, "fail": [status] * 3, "key": f"sdk-{status}-{stream}"}
        stack.reset_fake()
        with pytest.raises(error_class) as raised:
            client(stack).chat.completions.create(model="gpt-4o-mini", stream=stream,
                                                  messages=script(**knobs))
        body = raised.value.body  # type: ignore[attr-defined]
        assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
        assert f"answered {status}" in body["message"]


def test_gateway_refusals_are_bad_request_errors(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError, match="'n' must be 1"):
        client(stack).chat.completions.create(model="gpt-4o-mini", messages=script(), n=2)
    with pytest.raises(openai.BadRequestError, match="messages"):
        client(stack).chat.completions.create(model="gpt-4o-mini", messages=[])


def test_failure_after_the_first_token_raises_in_the_stream(stack: Stack) -> None:
    stream = client(stack).chat.completions.create(
        model="gpt-4o-mini", messages=script(tokens=5, error_after=2), stream=True)
    text = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            text.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "".join(text) == "tok0 tok1 "
    with pytest.raises(openai.APIStatusError):  # not streaming: an error status instead
        client(stack).chat.completions.create(
            model="gpt-4o-mini", messages=script(tokens=5, error_after=2))


def test_every_stream_carries_its_id(stack: Stack) -> None:
    raw = client(stack).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=script(tokens=1), stream=True)
    stream_id = raw.headers["x-stream-id"]
    chunks = list(raw.parse())
    assert chunks[0].id == f"chatcmpl-{stream_id}"
    whole = client(stack).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=script(tokens=1))
    assert whole.parse().id == f"chatcmpl-{whole.headers['x-stream-id']}"
