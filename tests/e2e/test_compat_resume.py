"""Resumable streams on /v1/chat/completions and /v1/messages (``X-Resumable: true``):
kept in the stream log, replayed at /v1/streams/{id} in the format they were created in,
with an ``id:`` on each frame that both SDK decoders read past."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.lib.streaming import MessageStream
from anthropic.types import RawMessageStreamEvent
from httpx_sse import ServerSentEvent, connect_sse
from openai.types.chat import ChatCompletionChunk

from tests.e2e.stack import Stack

UPSTREAMS = ["openai", "anthropic"]
RESUMABLE = {"X-Resumable": "true"}


@pytest.fixture(scope="module", params=UPSTREAMS)
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 0.2, "streams.retention": 5.0,
                "streams.detached_idle_timeout": 2.0}, provider_kind=request.param) as s:
        yield s


def openai_client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0,
                         timeout=10)


def anthropic_client(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url, api_key="unused", max_retries=0,
                               timeout=10)


def fake(**knobs: Any) -> str:
    return "#fake " + json.dumps(knobs)


def chat_body(**knobs: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": fake(**knobs)}]}


def messages_body(**knobs: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-6", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": fake(**knobs)}]}


def read_events(stack: Stack, method: str, path: str, limit: int | None = None,
                **kwargs: Any) -> tuple[httpx.Headers, list[ServerSentEvent]]:
    """The events of one response, at most ``limit`` of them (then it hangs up)."""
    events: list[ServerSentEvent] = []
    with httpx.Client(timeout=10) as client, \
            connect_sse(client, method, stack.url + path, **kwargs) as source:
        assert source.response.status_code == 200, source.response.read()
        for event in source.iter_sse():
            events.append(event)
            if limit is not None and len(events) == limit:
                break
        return source.response.headers, events


def wait_ended(stack: Stack, stream_id: str) -> None:
    for _ in range(500):
        resumable = stack.server.gateway.store.get(stream_id)  # type: ignore[union-attr]
        if resumable is None or resumable.output.log.finished:
            return
        time.sleep(0.01)
    raise AssertionError("stream did not end")


def test_openai_resumable_stream_carries_its_url_and_parses(stack: Stack) -> None:
    raw = openai_client(stack).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": fake(tokens=3)}],
        stream=True, stream_options={"include_usage": True}, extra_headers=RESUMABLE)
    stream_id = raw.headers["x-stream-id"]
    assert raw.headers["location"] == f"/v1/streams/{stream_id}"
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "tok0 tok1 tok2 "
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert chunks[0].id == f"chatcmpl-{stream_id}"


def test_openai_frames_carry_increasing_ids(stack: Stack) -> None:
    headers, events = read_events(stack, "POST", "/v1/chat/completions",
                                  json=chat_body(tokens=3), headers=RESUMABLE)
    ids = [int(event.id) for event in events]
    assert ids == list(range(1, len(ids) + 1))  # one frame, one event here
    assert events[-1].data == "[DONE]"
    assert headers["content-type"].startswith("text/event-stream")


def test_openai_resume_after_last_event_id_in_the_sdk(stack: Stack) -> None:
    headers, first = read_events(stack, "POST", "/v1/chat/completions", limit=3,
                                 json=chat_body(tokens=8, rate=40), headers=RESUMABLE)
    stream_id = headers["x-stream-id"]
    seen = "".join(json.loads(e.data)["choices"][0]["delta"].get("content", "")
                   for e in first)
    rest = openai_client(stack).get(
        f"/streams/{stream_id}", cast_to=ChatCompletionChunk, stream=True,
        stream_cls=openai.Stream[ChatCompletionChunk],
        options={"headers": {"Last-Event-ID": first[-1].id or ""}})
    resumed = "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
    assert seen + resumed == "".join(f"tok{i} " for i in range(8))


def test_openai_resume_by_query_replays_the_same_bytes(stack: Stack) -> None:
    headers, events = read_events(stack, "POST", "/v1/chat/completions",
                                  json=chat_body(tokens=4), headers=RESUMABLE)
    stream_id = headers["x-stream-id"]
    _, replayed = read_events(stack, "GET", f"/v1/streams/{stream_id}?lastEventId=2")
    assert [(e.id, e.data) for e in replayed] == [(e.id, e.data) for e in events[2:]]


def test_anthropic_resumable_stream_final_message(stack: Stack) -> None:
    with anthropic_client(stack).messages.stream(
            model="claude-sonnet-4-6", max_tokens=100, extra_headers=RESUMABLE,
            messages=[{"role": "user", "content": fake(tokens=3)}]) as stream:
        final = stream.get_final_message()
        stream_id = stream.response.headers["x-stream-id"]
    assert final.content[0].type == "text" and final.content[0].text == "tok0 tok1 tok2 "
    assert final.id == f"msg_{stream_id}"
    assert stream.response.headers["location"] == f"/v1/streams/{stream_id}"


def test_anthropic_replay_is_a_message_stream_again(stack: Stack) -> None:
    headers, _ = read_events(stack, "POST", "/v1/messages", json=messages_body(
        tokens=2, tool_call={"name": "get_weather", "arguments": '{"city": "Paris"}'}),
        headers=RESUMABLE)
    stream_id = headers["x-stream-id"]
    wait_ended(stack, stream_id)
    replay = anthropic_client(stack).get(
        f"/v1/streams/{stream_id}", cast_to=RawMessageStreamEvent, stream=True,  # type: ignore[arg-type]
        stream_cls=anthropic.Stream[RawMessageStreamEvent])
    final = MessageStream(replay, anthropic.NOT_GIVEN).get_final_message()  # type: ignore[arg-type]
    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


def test_anthropic_resume_continues_after_the_last_id(stack: Stack) -> None:
    headers, first = read_events(stack, "POST", "/v1/messages", limit=4,
                                 json=messages_body(tokens=8, rate=40), headers=RESUMABLE)
    stream_id = headers["x-stream-id"]
    assert first[-1].id  # the events of a frame share its id, on its last event
    _, rest = read_events(stack, "GET", f"/v1/streams/{stream_id}",
                          headers={"last-event-id": first[-1].id})
    _, whole = read_events(stack, "GET", f"/v1/streams/{stream_id}")
    names = [e.event for e in whole if e.event != "ping"]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert [e.data for e in first + rest if e.event != "ping"] == \
        [e.data for e in whole if e.event != "ping"]


def test_resumable_generation_goes_on_without_a_reader(stack: Stack) -> None:
    headers, _ = read_events(stack, "POST", "/v1/chat/completions", limit=1,
                             json=chat_body(tokens=5, rate=50), headers=RESUMABLE)
    stream_id = headers["x-stream-id"]
    wait_ended(stack, stream_id)
    _, events = read_events(stack, "GET", f"/v1/streams/{stream_id}")
    assert events[-1].data == "[DONE]"
    text = "".join(json.loads(e.data)["choices"][0]["delta"].get("content", "")
                   for e in events[:-1] if json.loads(e.data)["choices"])
    assert text == "tok0 tok1 tok2 tok3 tok4 "


def test_on_disconnect_cancel_stops_the_generation(stack: Stack) -> None:
    headers, _ = read_events(stack, "POST", "/v1/chat/completions", limit=1,
                             json=chat_body(tokens=200, rate=20),
                             headers={**RESUMABLE, "X-On-Disconnect": "cancel"})
    stream_id = headers["x-stream-id"]
    for _ in range(200):
        resumable = stack.server.gateway.store.get(stream_id)  # type: ignore[union-attr]
        if resumable is not None and resumable.relay.status == "cancelled":
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the generation went on without its reader")


def test_delete_cancels_a_resumable_compat_stream(stack: Stack) -> None:
    headers, _ = read_events(stack, "POST", "/v1/messages", limit=1,
                             json=messages_body(tokens=200, rate=20), headers=RESUMABLE)
    stream_id = headers["x-stream-id"]
    response = httpx.delete(f"{stack.url}/v1/streams/{stream_id}")
    assert response.json()["status"] == "cancelled"
    _, events = read_events(stack, "GET", f"/v1/streams/{stream_id}")
    assert events[-1].event == "error"
    assert json.loads(events[-1].data)["error"]["type"] == "api_error"


def test_bad_resume_headers_are_each_apis_400(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError, match="X-Resumable"):
        openai_client(stack).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            stream=True, extra_headers={"X-Resumable": "maybe"})
    with pytest.raises(anthropic.BadRequestError, match="stream"):
        anthropic_client(stack).messages.create(
            model="claude-sonnet-4-6", max_tokens=10, extra_headers=RESUMABLE,
            messages=[{"role": "user", "content": "hi"}])


def test_streams_without_the_header_carry_no_ids(stack: Stack) -> None:
    headers, events = read_events(stack, "POST", "/v1/chat/completions",
                                  json=chat_body(tokens=2))
    assert "location" not in headers and headers["x-stream-id"]
    assert all(not event.id for event in events)
