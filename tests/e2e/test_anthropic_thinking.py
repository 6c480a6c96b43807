"""Thinking signatures, redacted thinking and stop sequences reach /v1/messages clients:
the anthropic SDK's final message through the gateway is the one it makes of the
provider's own stream, so a thinking conversation with tools can be sent back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest
from anthropic.types import Message

from tests.e2e.raw_upstream import LAST_CHUNK, RawUpstream, chunk, head
from tests.e2e.stack import Stack
from tests.e2e.test_hostile_upstream import SETTINGS, providers_toml

RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "recordings"
THINKING = ["an_thinking", "an_parts_thinking", "an_thinking_noarg_tool",
            "an_redacted_thinking"]
MODEL = "rawanthropic/claude-sonnet-4-5"
USER = {"role": "user", "content": "Think, then answer."}


def recording(name: str) -> bytes:
    path = RECORDINGS / f"{name}.sse"
    if not path.exists():
        pytest.skip(f"the recordings are not here ({RECORDINGS})")
    return path.read_bytes()


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream([head(), LAST_CHUNK]) as raw:
        yield raw


@pytest.fixture(scope="module")
def stack(upstream: RawUpstream) -> Iterator[Stack]:
    with Stack(SETTINGS, toml=providers_toml(upstream.url)) as s:
        yield s


def client(url: str, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=10,
                               **options)


def sdk_final_message(upstream: RawUpstream, body: bytes) -> Message:
    """What the SDK makes of the provider's own stream, talking to it directly."""
    upstream.answer([head(), chunk(body), LAST_CHUNK])
    with client(upstream.url).messages.stream(model="m", max_tokens=2048,
                                              messages=[USER]) as stream:
        return stream.get_final_message()


def gateway_final_message(stack: Stack, upstream: RawUpstream, body: bytes,
                          messages: list[Any] | None = None) -> Message:
    upstream.answer([head(), chunk(body), LAST_CHUNK])
    with client(stack.url).messages.stream(model=MODEL, max_tokens=2048,
                                           messages=messages or [USER]) as stream:
        return stream.get_final_message()


def content(message: Message) -> list[dict[str, Any]]:
    return [block.model_dump(exclude_none=True, exclude={"caller"})
            for block in message.content]


@pytest.mark.parametrize("name", THINKING)
def test_final_message_matches_the_providers(stack: Stack, upstream: RawUpstream,
                                             name: str) -> None:
    body = recording(name)
    expected = sdk_final_message(upstream, body)
    got = gateway_final_message(stack, upstream, body)
    assert content(got) == content(expected)
    assert (got.stop_reason, got.stop_sequence) == (expected.stop_reason,
                                                    expected.stop_sequence)
    kinds = {block.type for block in got.content}
    assert kinds & {"thinking", "redacted_thinking"}
    assert all(block.signature for block in got.content if block.type == "thinking")


@pytest.mark.parametrize("name", THINKING)
def test_whole_answer_matches_the_providers(stack: Stack, upstream: RawUpstream,
                                            name: str) -> None:
    body = recording(name)
    upstream.answer([head(), chunk(body), LAST_CHUNK])
    got = client(stack.url).messages.create(model=MODEL, max_tokens=2048, messages=[USER])
    assert content(got) == content(sdk_final_message(upstream, body))


def test_thinking_turn_with_a_tool_goes_back_signed(stack: Stack,
                                                    upstream: RawUpstream) -> None:
    """The second turn of a tool call made while thinking: the provider gets the
    thinking block back with the signature it gave (it refuses it otherwise)."""
    first = gateway_final_message(stack, upstream, recording("an_thinking_noarg_tool"))
    call = next(block for block in first.content if block.type == "tool_use")
    history = [USER, {"role": "assistant", "content": content(first)},
               {"role": "user", "content": [{"type": "tool_result",
                                             "tool_use_id": call.id, "content": "1.2.3"}]}]
    gateway_final_message(stack, upstream, recording("an_thinking"), history)
    sent = orjson.loads(upstream.bodies[-1])["messages"][1]["content"]
    thinking = next(block for block in sent if block["type"] == "thinking")
    assert thinking["signature"] == next(
        block.signature for block in first.content if block.type == "thinking")
    assert thinking["signature"].startswith("EoQDCm0I")


def test_matched_stop_sequence_comes_back(stack: Stack, upstream: RawUpstream) -> None:
    body = recording("an_thinking").replace(
        b'"stop_reason":"end_turn","stop_sequence":null',
        b'"stop_reason":"stop_sequence","stop_sequence":"###"')
    assert b'"stop_sequence":"###"' in body
    for got in (gateway_final_message(stack, upstream, body), sdk_final_message(upstream, body)):
        assert (got.stop_reason, got.stop_sequence) == ("stop_sequence", "###")


@pytest.fixture(scope="module", params=["anthropic", "openai"])
def fake_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 0.2}, provider_kind=request.param) as s:
        yield s


def fake(**knobs: Any) -> list[Any]:
    return [{"role": "user", "content": "#fake " + json.dumps(knobs)}]


def test_fake_provider_stop_sequence(fake_stack: Stack) -> None:
    anthropic_client = client(fake_stack.url)
    with anthropic_client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=100, stop_sequences=["END"],
            messages=fake(tokens=2, stop_sequence="END")) as stream:
        streamed = stream.get_final_message()
    whole = anthropic_client.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, stop_sequences=["END"],
        messages=fake(tokens=2, stop_sequence="END"))
    # an OpenAI-format provider says "stop", not which sequence: end_turn is all we know
    expected = ("stop_sequence", "END") if fake_stack.provider_kind == "anthropic" \
        else ("end_turn", None)
    for message in (streamed, whole):
        assert (message.stop_reason, message.stop_sequence) == expected


def test_fake_provider_thinking_is_signed(fake_stack: Stack) -> None:
    with client(fake_stack.url).messages.stream(
            model="claude-sonnet-4-6", max_tokens=100,
            messages=fake(tokens=2, thinking=2)) as stream:
        final = stream.get_final_message()
    thinking = final.content[0]
    assert thinking.type == "thinking" and thinking.thinking == "think0 think1 "
    # only an Anthropic-format provider signs its thinking
    assert thinking.signature == ("fakesig==" if fake_stack.provider_kind == "anthropic"
                                  else "")
