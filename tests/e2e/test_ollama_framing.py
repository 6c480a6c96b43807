"""Ollama's NDJSON body through the gateway, from a provider written in the test: the
relay reads it with the line reader its provider's framing names, whatever the reads,
under either of Ollama's labels; a body of another label is refused like any 200 that
is no stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.raw_upstream import LAST_CHUNK, RawUpstream, chunk, head, whole
from tests.e2e.stack import Stack
from tests.e2e.test_hostile_upstream import parse_events
from tests.providers.test_recordings import RECORDINGS

LINES = [b'{"model":"m","message":{"role":"assistant","content":"","thinking":"Hm."},'
         b'"done":false}\n',
         b'{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}\n',
         b'{"model":"m","message":{"role":"assistant","content":" \xf0\x9f\x98\x8a"},'
         b'"done":false}\n',
         b'{"model":"m","message":{"role":"assistant","content":""},"done":true,'
         b'"done_reason":"stop","prompt_eval_count":5,"eval_count":3}\n']


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream([]) as raw:
        yield raw


@pytest.fixture(scope="module")
def stack(upstream: RawUpstream) -> Iterator[Stack]:
    toml = f'[providers.local]\nkind = "ollama"\nbase_url = "{upstream.url}"\n'
    with Stack({"upstream.backoff_initial": 0.01, "upstream.backoff_max": 0.02},
               provider_kind="local", toml=toml) as s:
        yield s


def post(stack: Stack) -> tuple[int, list[tuple[str, Any]]]:
    response = httpx.post(stack.url + "/v1/stream", timeout=15, json={
        "model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]})
    if response.status_code != 200:
        return response.status_code, [("json", response.json())]
    return 200, [(e.get("event", "message"), e["data"] if e["data"] == "[DONE]" else
                  orjson.loads(e["data"])) for e in parse_events(response.text)]


def test_lines_one_read_each(stack: Stack, upstream: RawUpstream) -> None:
    upstream.answer([head(content_type="application/x-ndjson"),
                     *[step for line in LINES for step in (chunk(line), 0.01)], LAST_CHUNK])
    status, events = post(stack)
    assert status == 200
    assert events[1:] == [("reasoning", {"content": "Hm."}), ("message", {"content": "Hi"}),
                          ("message", {"content": " \U0001f60a"}),
                          ("usage", {"input_tokens": 5, "output_tokens": 3}),
                          ("message", "[DONE]")]


def test_lines_cut_anywhere_and_a_character_split(stack: Stack, upstream: RawUpstream) -> None:
    body = b"".join(LINES)
    cut = body.index(b"\x9f")  # inside the emoji
    upstream.answer([head(content_type="application/x-ndjson; charset=utf-8"),
                     chunk(body[:7]), 0.01, chunk(body[7:cut]), 0.01, chunk(body[cut:]),
                     LAST_CHUNK])
    status, events = post(stack)
    assert status == 200 and ("message", {"content": " \U0001f60a"}) in events


def test_an_error_line_after_text_is_an_error_event(stack: Stack,
                                                   upstream: RawUpstream) -> None:
    upstream.answer([head(content_type="application/x-ndjson"), chunk(LINES[1]), 0.01,
                     chunk(b'{"error":"llama runner process has terminated"}\n'),
                     LAST_CHUNK])
    status, events = post(stack)
    assert status == 200 and events[1] == ("message", {"content": "Hi"})
    name, error = events[-2]
    assert name == "error" and error["message"] == "llama runner process has terminated"


def test_a_page_of_another_label_is_no_stream(stack: Stack, upstream: RawUpstream) -> None:
    upstream.answer([whole("200 OK", "text/html", b"<html>quota</html>")])
    status, events = post(stack)
    assert status == 502 and "instead of an event stream" in events[0][1]["error"]["message"]


@pytest.mark.skipif(not (RECORDINGS / "ol_cloud_thinking.ndjson").is_file(),
                    reason="no recordings")
def test_the_cloud_recording_labelled_json_with_a_length(stack: Stack,
                                                          upstream: RawUpstream) -> None:
    body = (RECORDINGS / "ol_cloud_thinking.ndjson").read_bytes()
    upstream.answer([whole("200 OK", "application/json; charset=utf-8", body)])
    status, events = post(stack)
    assert status == 200 and events[-1] == ("message", "[DONE]")
    expected = [orjson.loads(line)["message"] for line in body.splitlines()]
    assert "".join(d["content"] for e, d in events if e == "reasoning") == \
        "".join(m.get("thinking", "") for m in expected)
    assert "".join(d["content"] for e, d in events if e == "message" and d != "[DONE]") == \
        "".join(m["content"] for m in expected)
    assert ("usage", {"input_tokens": 74, "output_tokens": 57}) in events
