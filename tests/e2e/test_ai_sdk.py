"""The AI SDK UI message stream, read by the npm ``ai`` package's own client side of
``useChat`` (DefaultChatTransport and readUIMessageStream, tests/node/ui_client.mjs),
and on the wire."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "node" / "ui_client.mjs"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (apt install nodejs)")
# The parts the UI message stream may carry (reference §3): AI SDK 5.0.x rejects others.
ALLOWED_KEYS = {
    "start": {"type", "messageId"}, "start-step": {"type"}, "finish-step": {"type"},
    "finish": {"type"}, "error": {"type", "errorText"},
    "text-start": {"type", "id"}, "text-delta": {"type", "id", "delta"},
    "text-end": {"type", "id"}, "reasoning-start": {"type", "id"},
    "reasoning-delta": {"type", "id", "delta"}, "reasoning-end": {"type", "id"},
    "tool-input-start": {"type", "toolCallId", "toolName"},
    "tool-input-delta": {"type", "toolCallId", "inputTextDelta"},
    "tool-input-available": {"type", "toolCallId", "toolName", "input"},
}


@pytest.fixture(scope="module", params=["openai", "anthropic"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 0.2}, provider_kind=request.param) as s:
        yield s


def ui_client(**options: Any) -> dict[str, Any]:
    if not (ROOT / "node_modules" / "ai").is_dir():
        pytest.fail("node_modules/ai is missing: run `npm ci` (make test does)")
    assert NODE is not None
    done = subprocess.run([NODE, str(CLIENT), json.dumps(options)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def user(text: str) -> dict[str, Any]:
    return {"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}


def fake(**knobs: Any) -> str:
    return "#fake " + json.dumps(knobs)


PARALLEL = [{"name": "weather", "arguments": '{"q": "Paris"}'},
            {"name": "time", "arguments": '{"q": "Tokyo"}'}]


def test_use_chat_transport_reads_a_turn(stack: Stack) -> None:
    result = ui_client(base=stack.url, chatId="chat-a", body={"model": "gpt-4o-mini"},
                       messages=[user(fake(tokens=3, thinking=2, tool_call=PARALLEL))])
    assert result["error"] is None
    parts = result["message"]["parts"]
    assert [p["type"] for p in parts] == [
        "step-start", "reasoning", "text", "tool-weather", "tool-time"]
    assert parts[1]["text"] == "think0 think1 " and parts[2]["text"] == "tok0 tok1 tok2 "
    assert [(p["state"], p["input"]) for p in parts[3:]] == [
        ("input-available", {"q": "Paris"}), ("input-available", {"q": "Tokyo"})]


def test_use_chat_sends_tool_results_back(stack: Stack) -> None:
    assistant = {"id": "a1", "role": "assistant", "parts": [
        {"type": "step-start"}, {"type": "text", "text": "checking"},
        {"type": "tool-weather", "toolCallId": "call_1", "state": "output-available",
         "input": {"q": "Paris"}, "output": {"sky": "clear"}},
        {"type": "step-start"}, {"type": "text", "text": "It is clear."}]}
    result = ui_client(base=stack.url, chatId="chat-b", body={"model": "gpt-4o-mini"},
                       messages=[user(fake(tokens=2)), assistant, user(fake(tokens=2))])
    assert result["error"] is None
    assert [p["text"] for p in result["message"]["parts"] if p["type"] == "text"] == [
        "tok0 tok1 "]


def test_format_ai_sdk_on_v1_stream_with_a_failure(stack: Stack) -> None:
    result = ui_client(mode="stream", base=stack.url, streamBody={
        "model": "gpt-4o-mini", "format": "ai-sdk",
        "messages": [{"role": "user", "content": fake(tokens=3, error_after=2)}]})
    assert result["error"]  # useChat raises the error part
    assert result["message"]["parts"][-1] == {"type": "text", "text": "tok0 tok1 ",
                                              "state": "done"}


def test_resume_replays_the_running_turn_then_answers_204(stack: Stack) -> None:
    slow = fake(tokens=8, rate=4)  # 2 s: longer than a node process takes to start
    chat_id = "chat r+é"  # the transport percent-encodes it in the resume URL
    started = threading.Thread(target=ui_client, kwargs=dict(
        base=stack.url, chatId=chat_id, body={"model": "gpt-4o-mini"}, messages=[user(slow)]))
    started.start()
    deadline = time.monotonic() + 10
    while stack.stats()["active"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    resumed = ui_client(mode="resume", base=stack.url, chatId=chat_id)
    started.join(30)
    assert resumed["status"] == 200 and resumed["error"] is None
    assert resumed["message"]["parts"][-1]["text"] == "".join(f"tok{i} " for i in range(8))
    assert ui_client(mode="resume", base=stack.url, chatId=chat_id)["status"] == 204
    assert ui_client(mode="resume", base=stack.url, chatId="never")["status"] == 204


def wire_parts(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-stream-id"]
    lines = [line for line in response.text.split("\n") if line and line != ": ping"]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    parts = [orjson.loads(line[6:]) for line in lines[:-1]]
    for part in parts:
        assert set(part) <= ALLOWED_KEYS[part["type"]], part
    return parts


def test_resumable_ai_sdk_stream_replays_in_its_format(stack: Stack) -> None:
    body = {"model": "gpt-4o-mini", "format": "ai-sdk",
            "messages": [{"role": "user", "content": fake(tokens=2, tool_call=PARALLEL)}]}
    started = httpx.post(stack.url + "/v1/streams", json=body, timeout=10).json()
    parts = wire_parts(httpx.get(stack.url + started["url"], timeout=10))
    assert [p["type"] for p in parts] == [
        "start", "start-step", "text-start", "text-delta", "text-delta", "text-end",
        "tool-input-start", "tool-input-delta", "tool-input-delta", "tool-input-delta",
        "tool-input-start", "tool-input-delta", "tool-input-delta", "tool-input-delta",
        "tool-input-available", "tool-input-available", "finish-step", "finish"]
    assert parts[0]["messageId"] == f"msg_{started['id']}"


def test_chat_requests_the_gateway_refuses(stack: Stack) -> None:
    unnamed = httpx.post(stack.url + "/v1/chat", timeout=5, json={
        "id": "c", "messages": [user("hi")], "trigger": "submit-message"})
    assert unnamed.status_code == 400 and "'model' is required" in unnamed.text
    empty = httpx.post(stack.url + "/v1/chat", timeout=5, json={
        "id": "c", "model": "m", "messages": []})
    assert empty.status_code == 400
