"""Ollama's native chat API: its request, its lines unit by unit, and every ol_*
recording read through the NDJSON reader, cut at random points, against an
accumulation written from the reference (reference/gemini-and-ollama-stream.md,
Part 2: content and thinking concatenated, tool calls whole, the done line's
done_reason and eval counts). test_ollama_sdk.py holds them to the official client."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest

from sseserver.config import ProviderSettings, load_config
from sseserver.core.ndjson import NDJSONReader
from sseserver.errors import ProviderError, RequestError
from sseserver.events import ErrorEvent, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from sseserver.providers.errors import is_event_stream
from sseserver.providers.ollama import OllamaAdapter, OllamaProvider, ollama_body
from sseserver.providers.registry import make_provider
from sseserver.schema import GenerationRequest, Message
from tests.providers.test_recordings import RECORDINGS, Outcome, _assembled, random_reads
from tests.providers.test_responses_recordings import recordings


def provider(key: str | None = None) -> OllamaProvider:
    made = make_provider(ProviderSettings("ol", "ollama", "http://127.0.0.1:11434", key))
    assert isinstance(made, OllamaProvider)
    return made


def test_request() -> None:
    request = GenerationRequest(
        model="x", system="Be brief.", max_tokens=50, temperature=0.5,
        tools=({"name": "f", "parameters": {"type": "object"}},),
        messages=(Message("user", "Hi"),))
    upstream = provider().build_request(request, "llama3.2")
    assert upstream.url == "http://127.0.0.1:11434/api/chat"
    assert "authorization" not in dict(upstream.headers)
    assert orjson.loads(upstream.body) == {
        "model": "llama3.2", "stream": True,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Hi"}],
        "options": {"temperature": 0.5, "num_predict": 50},
        "tools": [{"type": "function", "function": {"name": "f",
                                                    "parameters": {"type": "object"}}}]}
    cloud = provider("ol-cloud-key-123").build_request(request, "m")
    assert dict(cloud.headers)["authorization"] == "Bearer ol-cloud-key-123"
    assert "ol-cloud-key-123" not in repr(cloud)


def test_request_of_tool_turns_images_and_formats() -> None:
    body = ollama_body({"model": "m", "seed": 7, "response_format": {"type": "json_object"},
                        "messages": [
        {"role": "user", "content": [{"type": "text", "text": "see"}, {
            "type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {
            "name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"}]})
    assert body["messages"] == [
        {"role": "user", "content": "see", "images": ["AAAA"]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "f", "arguments": {"a": 1}}}]},
        {"role": "tool", "content": "ok"}]
    assert body["options"] == {"seed": 7} and body["format"] == "json"
    for bad in ({"model": "m", "messages": [], "logprobs": True},
                {"model": "m", "messages": [], "tool_choice": "required"},
                {"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}):
        with pytest.raises(RequestError):
            ollama_body(bad)


def test_ollama_host_enables_the_provider() -> None:
    (settings,) = load_config(None, {"OLLAMA_HOST": "0.0.0.0:11434"}).providers
    assert (settings.name, settings.kind, settings.base_url) == (
        "ollama", "ollama", "http://0.0.0.0:11434")
    assert load_config(None, {"OLLAMA_HOST": "example.com"}).providers[0].base_url == \
        "http://example.com:11434"
    assert load_config(None, {}).providers == ()


def test_its_stream_is_ndjson_labelled_either_way() -> None:
    ollama = provider()
    assert isinstance(ollama.new_body_reader(1024, 1024), NDJSONReader)
    assert is_event_stream({"content-type": "application/x-ndjson"}, ollama.media_types)
    assert is_event_stream({"content-type": "application/json; charset=utf-8"},
                           ollama.media_types)
    assert not is_event_stream({"content-type": "text/html"}, ollama.media_types)
    assert not is_event_stream({"content-type": "application/x-ndjson"})


def test_an_error_body_gives_its_text() -> None:
    error = provider().map_error(404, {}, b'{"error":"model \\"x\\" not found"}')
    assert 'model "x" not found' in str(error) and not error.retryable


def line(message: dict[str, Any] | None = None, **fields: Any) -> str:
    return orjson.dumps({"model": "m", "message": {"role": "assistant", "content": "",
                                                   **(message or {})},
                         "done": False, **fields}).decode()


def test_lines_to_events() -> None:
    adapter = OllamaAdapter()
    assert adapter.feed_message(line({"content": "Hi"})) == "Hi"
    assert adapter.feed_message(line({"thinking": "hmm"})) == [ReasoningDelta("hmm")]
    calls = adapter.feed_message(line({"tool_calls": [
        {"function": {"name": "f", "arguments": {"a": 1}}},
        {"id": "call_7", "function": {"name": "g", "arguments": {}}}]}))
    assert isinstance(calls, list)
    first, second = calls
    assert first == ToolCallDelta(0, first.id, "f", '{"a":1}') and first.id
    assert second == ToolCallDelta(1, "call_7", "g", "{}")
    assert adapter.feed_message(line(done=True, done_reason="stop", prompt_eval_count=3,
                                     eval_count=4)) == [Finish("tool_calls"), Usage(3, 4)]
    assert adapter.finished


def test_length_and_errors() -> None:
    assert OllamaAdapter().feed_message(line(done=True, done_reason="length")) == [
        Finish("length"), Usage(0, 0)]
    assert OllamaAdapter().feed_message('{"error":"runner died"}') == [
        ErrorEvent("server_error", "runner died", retryable=True)]


@pytest.mark.parametrize("bad", [
    line({"content": 5}), line({"thinking": {}}), line({"tool_calls": {}}),
    line({"tool_calls": [{"function": {"name": 1}}]}),
    line({"tool_calls": [{"function": {"arguments": 3}}]}),
    line(done=True, eval_count=-1), line(done="yes"), '{"message":"x","done":false}',
    '["a"]', "{nope",
])
def test_wrong_types_are_provider_errors(bad: str) -> None:
    with pytest.raises(ProviderError):
        OllamaAdapter().feed_message(bad)


# -- the recordings -------------------------------------------------------------------

def gateway(body: bytes, rng: random.Random) -> Outcome:
    """As the relay reads an NDJSON body: the reader's shortcut pair, then the adapter."""
    adapter, reader, events = OllamaAdapter(), NDJSONReader(), []
    for read in random_reads(body, rng):
        single = reader.feed_data_line(read)
        for text in [single] if single is not None else reader.feed_data_lines(read):
            result = adapter.feed_message(text)
            events.extend([TextDelta(result)] if type(result) is str else result)
    assert reader.close() is None and adapter.finished
    outcome = _assembled(events)
    outcome.tools = {index: (None, name, args) for index, (_, name, args)
                     in outcome.tools.items()}  # ids are made up where Ollama sends none
    return outcome


def reference(body: bytes) -> Outcome:
    """The reference's accumulation, over whole lines read with the json module."""
    outcome = Outcome()
    for text in body.decode().splitlines():
        chunk = json.loads(text)
        message = chunk.get("message", {})
        outcome.text += message.get("content", "")
        outcome.reasoning += message.get("thinking", "")
        for call in message.get("tool_calls", []):
            function = call["function"]
            outcome.tools[len(outcome.tools)] = (
                None, function["name"], json.dumps(function["arguments"], separators=(",", ":")))
        if chunk.get("done"):
            outcome.usage = (chunk.get("prompt_eval_count", 0), chunk.get("eval_count", 0))
            reason = chunk.get("done_reason", "stop")
            outcome.finish = "tool_calls" if outcome.tools else reason
    return outcome


OLLAMA_RECORDINGS = recordings("ollama")


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason=f"no recordings at {RECORDINGS}")
@pytest.mark.parametrize("body_file", OLLAMA_RECORDINGS)
def test_the_adapter_reads_a_recording_as_the_reference_accumulates_it(body_file: str) -> None:
    body = (RECORDINGS / body_file).read_bytes()
    expected = reference(body)
    assert expected.finish is not None and (expected.text or expected.reasoning)
    for split in range(5):
        assert gateway(body, random.Random(f"{body_file}/{split}")) == expected, split


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason=f"no recordings at {RECORDINGS}")
def test_every_ollama_recording_is_tested() -> None:
    assert len(OLLAMA_RECORDINGS) >= 5, OLLAMA_RECORDINGS
