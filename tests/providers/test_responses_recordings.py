"""Real recorded Responses API streams: the adapter agrees with openai-python.

Every recording of format ``openai-responses`` in ``../shared/recordings`` goes
through the real SSE parser and :class:`ResponsesAdapter`, read in pieces cut at
random points, and through openai-python's Responses stream helper
(``client.responses.stream``) reading the same bytes from a loopback server. The two
must agree on text, reasoning, tool calls (call id, name, arguments), usage, finish
reason and error. Skipped when the recordings are absent.

Where the gateway knowingly differs from the SDK, the comparison says so:
- a refusal is text for the gateway (as for Chat Completions).
- reasoning summary parts are joined with a blank line for the gateway
  (:data:`SUMMARY_SEPARATOR`); the SDK keeps them as a list.
- ``response.incomplete`` for any reason but ``max_output_tokens`` is an error for the
  gateway (the reply was cut); the SDK hands back the incomplete response, whose
  ``incomplete_details.reason`` is the error's type here.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from sseserver.core.sse import SSEParser
from sseserver.errors import ProviderError
from sseserver.events import ErrorEvent, NormalizedEvent, TextDelta
from sseserver.providers.openai_responses import SUMMARY_SEPARATOR, ResponsesAdapter
from tests.providers.test_recordings import (
    RECORDINGS,
    Outcome,
    _assembled,
    _Upstream,
    random_reads,
    upstream,
)

openai = pytest.importorskip("openai")

SPLITS = 3  # random ways to cut each body into reads
__all__ = ["upstream"]  # the loopback server fixture, shared with test_recordings


def recordings(wire_format: str) -> list[str]:
    if not RECORDINGS.is_dir():
        return []
    return [info["body_file"] for meta in sorted(RECORDINGS.glob("*.json"))
            if (info := json.loads(meta.read_text())).get("format") == wire_format]


pytestmark = pytest.mark.skipif(not RECORDINGS.is_dir(),
                                reason=f"no recordings at {RECORDINGS}")


def gateway(body: bytes, rng: random.Random) -> Outcome:
    adapter = ResponsesAdapter()
    events: list[NormalizedEvent] = []
    parser = SSEParser()
    error = None
    try:
        for read in random_reads(body, rng):
            for sse in parser.feed(read):
                if sse.event == "message":
                    result = adapter.feed_message(sse.data)
                    events.extend([TextDelta(result)] if type(result) is str else result)
                else:
                    events.extend(adapter.feed(sse.event, sse.data))
                if adapter.finished or any(type(e) is ErrorEvent for e in events):
                    break
            else:
                continue
            break
    except ProviderError as exc:
        error = ("provider_error", str(exc))
    outcome = _assembled(events)
    outcome.error = outcome.error or error
    if outcome.usage is None:
        usage = adapter.usage_so_far()  # what the relay reports for a stream cut short
        outcome.usage = (usage.input_tokens, usage.output_tokens) if usage else None
    return outcome


def responses_sdk(base_url: str) -> Outcome:
    client = openai.OpenAI(api_key="sk-test", base_url=f"{base_url}/v1", max_retries=0)
    outcome = Outcome()
    final: Any = None
    try:
        with client.responses.stream(model="m", input="hi") as stream:
            for event in stream:
                if event.type in ("response.completed", "response.incomplete",
                                  "response.failed"):
                    final = event.response
                elif event.type == "error":  # the flat form: yielded, not raised
                    outcome.error = (event.code or "provider_error", event.message)
                    return outcome
    except openai.APIError as exc:  # the nested form: raised
        body = exc.body if isinstance(exc.body, dict) else {}
        outcome.error = (body.get("code") or body.get("type") or "provider_error",
                         exc.message)
        return outcome
    assert final is not None, "the recording has no terminal event"
    _read_response(final, outcome)
    return outcome


def _read_response(response: Any, outcome: Outcome) -> None:
    summaries: list[str] = []
    calls = []
    for item in response.output:
        if item.type == "message":
            outcome.text += "".join(
                part.text if part.type == "output_text" else part.refusal
                for part in item.content)
        elif item.type == "reasoning":
            summaries.extend(part.text for part in item.summary if part.text)
        elif item.type == "function_call":
            calls.append((item.call_id, item.name, item.arguments or "{}"))
    outcome.reasoning = SUMMARY_SEPARATOR.join(summaries)
    outcome.tools = dict(enumerate(calls))
    if response.usage is not None:
        outcome.usage = (response.usage.input_tokens, response.usage.output_tokens)
    if response.status == "failed":
        outcome.error = (response.error.code, response.error.message)
    elif response.status == "incomplete":
        reason = response.incomplete_details.reason
        if reason == "max_output_tokens":
            outcome.finish = "length"
        else:
            outcome.error = (reason, "")
    else:
        outcome.finish = "tool_calls" if calls else "stop"


@pytest.mark.parametrize("body_file", recordings("openai-responses"))
def test_the_gateway_reads_a_responses_recording_as_openai_python_does(
        upstream: str, body_file: str) -> None:
    body = (RECORDINGS / body_file).read_bytes()
    _Upstream.pieces = list(random_reads(body, random.Random(body_file)))
    expected = responses_sdk(upstream)
    for split in range(SPLITS):
        got = gateway(body, random.Random(f"{body_file}/{split}"))
        if expected.error is not None:
            # the SDK raises before it reads usage; a cut reply's message is ours
            got.usage = expected.usage = None
            if not expected.error[1]:
                got.error = (got.error[0], "") if got.error else None
        assert got == expected, f"{body_file}, split {split}"


def test_every_responses_recording_is_tested() -> None:
    found = recordings("openai-responses")
    assert len(found) >= 10, found
    assert all(Path(RECORDINGS / name).is_file() for name in found)
