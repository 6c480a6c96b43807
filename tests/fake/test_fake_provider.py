"""The fake provider over loopback: both wire formats, every knob, stats."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import connect_sse

from sseserver.fake.script import ScriptError, parse_script, split_tokens
from tests.e2e.stack import Stack


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    with Stack() as stack:
        assert stack.fake is not None
        yield stack.fake.base_url


def openai_body(script: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    content = "#fake " + orjson.dumps(script).decode() if script is not None else "Hi"
    return {"model": "gpt-test", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": content}], **extra}


def anthropic_body(script: dict[str, Any]) -> dict[str, Any]:
    return {"model": "claude-test", "stream": True, "max_tokens": 100,
            "messages": [{"role": "user", "content": "#fake " + orjson.dumps(script).decode()}]}


def events(url: str, body: dict[str, Any]) -> list[Any]:
    with httpx.Client(timeout=10) as client, connect_sse(client, "POST", url, json=body) as src:
        assert src.response.status_code == 200
        return list(src.iter_sse())


def test_script_parsing() -> None:
    assert parse_script("hello") is None
    script = parse_script('#fake {"tokens": 3, "fail": [429]}')
    assert script is not None and script.reply_tokens() == ["tok0 ", "tok1 ", "tok2 "]
    assert script.fail == (429,)
    for bad in ("#fake {", "#fake []", '#fake {"tokenz": 1}', '#fake {"tokens": -1}',
                '#fake {"fail": [200]}', '#fake {"rate": "fast"}',
                '#fake {"stop_sequence": 1}'):
        with pytest.raises(ScriptError):
            parse_script(bad)
    assert "".join(split_tokens(" a  b\nc ")) == " a  b\nc "


def test_openai_stream_shape(fake_url: str) -> None:
    received = events(fake_url + "/v1/chat/completions", openai_body({"tokens": 3}))
    assert received[-1].data == "[DONE]"
    chunks = [orjson.loads(e.data) for e in received[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "",
                                                "refusal": None}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:4]] == [
        "tok0 ", "tok1 ", "tok2 "]
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    assert chunks[5]["choices"] == [] and chunks[5]["usage"]["completion_tokens"] == 3


def test_anthropic_stream_shape(fake_url: str) -> None:
    received = events(fake_url + "/v1/messages", anthropic_body(
        {"tokens": 2, "thinking": 2, "tool_call": {"name": "f", "arguments": '{"a": 1}'}}))
    names = [e.event for e in received]
    assert all(orjson.loads(e.data)["type"] == e.event for e in received)
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    deltas = [orjson.loads(e.data)["delta"] for e in received if e.event == "content_block_delta"]
    assert [d["type"] for d in deltas] == ["thinking_delta", "thinking_delta", "signature_delta",
                                           "text_delta", "text_delta", "input_json_delta",
                                           "input_json_delta", "input_json_delta",
                                           "input_json_delta"]
    assert "".join(d.get("partial_json", "") for d in deltas) == '{"a": 1}'
    stop = orjson.loads(received[-2].data)
    assert stop["delta"]["stop_reason"] == "tool_use" and stop["usage"]["output_tokens"] == 2


def test_stop_sequence_knob(fake_url: str) -> None:
    received = events(fake_url + "/v1/messages", anthropic_body({"tokens": 1,
                                                                 "stop_sequence": "END"}))
    assert orjson.loads(received[-2].data)["delta"] == {"stop_reason": "stop_sequence",
                                                        "stop_sequence": "END"}
    chunks = events(fake_url + "/v1/chat/completions", openai_body({"tokens": 1,
                                                                    "stop_sequence": "END"}))
    assert orjson.loads(chunks[-3].data)["choices"][0]["finish_reason"] == "stop"


def test_rate_and_ttfb(fake_url: str) -> None:
    started = time.monotonic()
    events(fake_url + "/v1/chat/completions", openai_body({"tokens": 10, "rate": 100,
                                                           "ttfb_ms": 100}))
    assert time.monotonic() - started >= 0.18


def test_fail_per_key_then_success(fake_url: str) -> None:
    body = openai_body({"tokens": 1, "fail": [429, 503], "key": "k-fail"})
    url = fake_url + "/v1/chat/completions"
    first = httpx.post(url, json=body)
    assert first.status_code == 429 and first.headers["retry-after"] == "0"
    assert first.json()["error"]["type"] == "rate_limit_exceeded"
    assert httpx.post(url, json=body).status_code == 503
    assert events(url, body)[-1].data == "[DONE]"
    anthropic = httpx.post(fake_url + "/v1/messages", json=anthropic_body(
        {"fail": [529], "key": "k-anthropic"}))
    assert anthropic.status_code == 529
    assert anthropic.json()["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(("knob", "check"), [
    ("error_after", lambda data: '"type":"server_error"' in data[-2] and data[-1] == "[DONE]"),
    ("malformed_after", lambda data: "{not json" in data),
])
def test_mid_stream_knobs(fake_url: str, knob: str, check: Any) -> None:
    received = events(fake_url + "/v1/chat/completions", openai_body({"tokens": 5, knob: 2}))
    assert check([e.data for e in received])


def test_drop_after_cuts_the_connection(fake_url: str) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        events(fake_url + "/v1/chat/completions", openai_body({"tokens": 5, "drop_after": 2}))


def test_stall_after_goes_silent(fake_url: str) -> None:
    with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=0.5) as client, \
            client.stream("POST", fake_url + "/v1/chat/completions",
                          json=openai_body({"tokens": 5, "stall_after": 2})) as response:
        for _ in response.iter_raw():
            pass


def test_bad_script_and_unknown_route(fake_url: str) -> None:
    response = httpx.post(fake_url + "/v1/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "#fake {nope"}]})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    assert httpx.get(fake_url + "/nope").status_code == 404


def test_stats_connections_and_cancellation(fake_url: str) -> None:
    httpx.post(fake_url + "/_fake/reset")
    with httpx.Client() as client:  # keep-alive: three requests, one connection
        for _ in range(2):
            client.post(fake_url + "/v1/chat/completions", json=openai_body({"tokens": 1}))
        stats = client.get(fake_url + "/_fake/stats").json()
    assert stats["requests"] == 2 and stats["connections"] == 1 and stats["completed"] == 2
    host, port = fake_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        body = orjson.dumps(openai_body({"tokens": 1000, "rate": 50}))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                     b"\r\n%b" % (len(body), body))
        sock.recv(100)
        assert httpx.get(fake_url + "/_fake/stats").json()["active"] == 1
    for _ in range(100):
        stats = httpx.get(fake_url + "/_fake/stats").json()
        if stats["cancelled"] == 1:
            break
        time.sleep(0.01)
    assert stats["cancelled"] == 1 and stats["active"] == 0


def test_default_reply_and_non_streaming(fake_url: str) -> None:
    received = events(fake_url + "/v1/chat/completions", openai_body())
    text = "".join(orjson.loads(e.data)["choices"][0]["delta"].get("content") or ""
                   for e in received[1:-3])
    assert text.startswith("This is a reply")
    whole = httpx.post(fake_url + "/v1/chat/completions", json=openai_body(stream=False))
    assert whole.json()["choices"][0]["message"]["content"].startswith("This is a reply")


def test_require_key(fake_url: str) -> None:
    body = openai_body({"tokens": 1, "require_key": "sk-right"})
    url = fake_url + "/v1/chat/completions"
    refused = httpx.post(url, json=body, headers={"authorization": "Bearer sk-wrong"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    accepted = httpx.post(url, json=body, headers={"authorization": "Bearer sk-right"})
    assert accepted.status_code == 200
    anthropic = httpx.post(fake_url + "/v1/messages", json=anthropic_body(
        {"tokens": 1, "require_key": "ak-right"}), headers={"x-api-key": "ak-right"})
    assert anthropic.status_code == 200
