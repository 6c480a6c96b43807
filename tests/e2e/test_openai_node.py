"""The official openai package for Node streaming through /v1/chat/completions, on both
provider wire formats (tests/node/openai_client.mjs)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (apt install nodejs)")


@pytest.fixture(scope="module", params=["openai", "anthropic"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 0.2}, provider_kind=request.param) as s:
        yield s


def node_openai(stack: Stack, helper: bool = False, **knobs: Any) -> dict[str, Any]:
    if not (ROOT / "node_modules" / "openai").is_dir():
        pytest.fail("node_modules/openai is missing: run `npm ci` (make test does)")
    assert NODE is not None
    request = {"model": "gpt-4o-mini", "stream_options": {"include_usage": True},
               "messages": [{"role": "user", "content": "#fake " + json.dumps(knobs)}]}
    if "tool_call" in knobs:
        request["tools"] = [{"type": "function", "function": {
            "name": call["name"], "parameters": {"type": "object"}}}
            for call in knobs["tool_call"]]
    done = subprocess.run([NODE, str(ROOT / "tests" / "node" / "openai_client.mjs"),
                           json.dumps({"base": stack.url, "request": request,
                                       "helper": helper})],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_streams_text_and_usage(stack: Stack) -> None:
    result = node_openai(stack, tokens=4)
    assert result["error"] is None
    assert result["text"] == "tok0 tok1 tok2 tok3 " and result["finish"] == "stop"
    assert result["usage"]["completion_tokens"] == 4


def test_stream_helper_assembles_parallel_tool_calls(stack: Stack) -> None:
    calls = [{"name": "weather", "arguments": '{"q": "Paris"}'},
             {"name": "time", "arguments": '{"q": "Tokyo"}'}]
    result = node_openai(stack, helper=True, tokens=1, tool_call=calls)
    assert result["error"] is None and result["finish"] == "tool_calls"
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in result["toolCalls"]] == [("weather", {"q": "Paris"}),
                                              ("time", {"q": "Tokyo"})]


def test_errors_are_the_sdk_classes(stack: Stack) -> None:
    stack.reset_fake()
    limited = node_openai(stack, tokens=1, fail=[429] * 3, key="node-429")
    assert limited["error"]["name"] == "RateLimitError" and limited["error"]["status"] == 429
    broken = node_openai(stack, tokens=4, error_after=2)
    assert broken["text"] == "tok0 tok1 " and broken["error"]["name"] == "APIError"
