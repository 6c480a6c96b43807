"""Azure OpenAI: its URLs, key header and settings; its stream, unit by unit and on
every az_* recording against openai-python's AzureOpenAI client."""

from __future__ import annotations

import random
from typing import Any

import httpx
import orjson
import pytest

from sseserver.config import ProviderSettings, load_config
from sseserver.errors import ConfigError
from sseserver.events import ErrorEvent, TextDelta
from sseserver.providers.azure import DEFAULT_API_VERSION, AzureAdapter, AzureOpenAIProvider
from sseserver.providers.registry import make_provider
from sseserver.schema import GenerationRequest, Message
from tests.e2e.stack import Stack
from tests.providers.test_recordings import (
    RECORDINGS,
    Outcome,
    _assembled,
    _relayed,
    _Upstream,
    random_reads,
    upstream,
)
from tests.providers.test_responses_recordings import recordings

openai = pytest.importorskip("openai")
from openai.lib.streaming.chat import ChatCompletionStreamState  # noqa: E402

__all__ = ["upstream"]  # the loopback server fixture, shared with test_recordings
KEY = "azure-secret-key-0123456789abcdef"
REQUEST = GenerationRequest(model="gpt-4o-mini", messages=(Message("user", "Hi"),))


def provider(base_url: str, **options: Any) -> AzureOpenAIProvider:
    made = make_provider(ProviderSettings("az", "azure-openai", base_url, KEY, **options))
    assert isinstance(made, AzureOpenAIProvider)
    return made


def test_deployment_url_key_header_and_body() -> None:
    request = provider("https://res.openai.azure.com").build_request(REQUEST, "gpt-4o-mini")
    assert request.url == "https://res.openai.azure.com/openai/deployments/gpt-4o-mini/" \
        f"chat/completions?api-version={DEFAULT_API_VERSION}"
    headers = dict(request.headers)
    assert headers["api-key"] == KEY and "authorization" not in headers
    assert KEY not in request.url and KEY not in repr(request)
    body = orjson.loads(request.body)
    assert body["model"] == "gpt-4o-mini" and body["stream"] is True


def test_configured_deployment_and_version_and_the_v1_form() -> None:
    named = provider("https://r.example", deployment="prod gpt", api_version="2025-04-01")
    assert named.build_request(REQUEST, "m").url == \
        "https://r.example/openai/deployments/prod%20gpt/chat/completions" \
        "?api-version=2025-04-01"
    v1 = provider("https://r.example/openai/v1")
    assert v1.build_request(REQUEST, "m").url == "https://r.example/openai/v1/chat/completions"


def test_a_model_name_cannot_leave_its_path() -> None:
    url = provider("https://r.example").build_request(REQUEST, "../../x?api-key=1#").url
    assert url.startswith("https://r.example/openai/deployments/..%2F..%2Fx%3Fapi-key%3D1%23/")


def test_settings_from_the_sdk_variables_and_the_table() -> None:
    config = load_config(None, {"AZURE_OPENAI_API_KEY": KEY, "OPENAI_API_VERSION": "2025-01-01",
                                "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/"})
    (settings,) = config.providers
    assert (settings.name, settings.kind, settings.base_url, settings.api_key,
            settings.api_version) == ("azure-openai", "azure-openai",
                                      "https://res.openai.azure.com", KEY, "2025-01-01")
    assert KEY not in repr(settings)
    with pytest.raises(ConfigError, match="AZURE_OPENAI_ENDPOINT"):
        load_config(None, {"AZURE_OPENAI_API_KEY": KEY})
    table = load_config('[providers.a]\nkind = "azure-openai"\nbase_url = "https://r"\n'
                        'deployment = "d"\napi_version = "v"\n', {})
    assert (table.providers[0].deployment, table.providers[0].api_version) == ("d", "v")
    with pytest.raises(ConfigError, match="deployment"):
        load_config('[providers.a]\nkind = "azure-openai"\nbase_url = "https://r"\n'
                    'deployment = 3\n', {})


def chunk(choice: dict[str, Any] | None = None, **fields: Any) -> str:
    return orjson.dumps({"choices": [choice] if choice else [], **fields}).decode()


def test_filter_results_carry_nothing_and_a_filtered_finish_is_an_error() -> None:
    adapter = AzureAdapter()
    assert adapter.feed("message", chunk(prompt_filter_results=[{"prompt_index": 0}])) == []
    assert adapter.feed("message", chunk({"index": 0, "delta": {"content": "Hi"},
                                          "content_filter_results": {}})) == [TextDelta("Hi")]
    cut = adapter.feed("message", chunk({"index": 0, "delta": {}, "finish_reason":
                                         "content_filter", "content_filter_results": {
                                             "violence": {"filtered": True},
                                             "hate": {"filtered": False}}}))
    assert cut == [ErrorEvent("content_filter", "the provider's content filter cut the "
                              "reply (violence)", retryable=False)]


# -- the recordings -------------------------------------------------------------------

def azure_sdk(base_url: str) -> Outcome:
    client = openai.AzureOpenAI(api_key="k", azure_endpoint=base_url,
                                api_version=DEFAULT_API_VERSION, max_retries=0)
    state = ChatCompletionStreamState()
    outcome = Outcome()
    for item in client.chat.completions.create(
            model="dep", messages=[{"role": "user", "content": "hi"}], stream=True):
        state.handle_chunk(item)
        if item.usage is not None:
            outcome.usage = (item.usage.prompt_tokens, item.usage.completion_tokens)
    choice = state.current_completion_snapshot.choices[0]
    message = choice.message
    outcome.text = (message.content or "") + (message.refusal or "")
    outcome.tools = {index: (call.id, call.function.name, call.function.arguments or "{}")
                     for index, call in enumerate(message.tool_calls or [])}
    outcome.finish = choice.finish_reason
    return outcome


AZURE_RECORDINGS = [name for name in recordings("openai") if name.startswith("az_")]


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason=f"no recordings at {RECORDINGS}")
@pytest.mark.parametrize("body_file", AZURE_RECORDINGS)
def test_the_adapter_reads_an_azure_recording_as_azure_openai_does(
        upstream: str, body_file: str) -> None:
    body = (RECORDINGS / body_file).read_bytes()
    _Upstream.pieces = list(random_reads(body, random.Random(body_file)))
    expected = azure_sdk(upstream)
    for split in range(3):
        adapter = AzureAdapter()
        events: list[Any] = []
        _relayed(adapter, random_reads(body, random.Random(f"{body_file}/{split}")), events)
        assert _assembled(events) == expected, f"{body_file}, split {split}"


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason=f"no recordings at {RECORDINGS}")
def test_every_azure_recording_is_tested() -> None:
    assert len(AZURE_RECORDINGS) >= 5, AZURE_RECORDINGS


# -- the fake's Azure routes, read by openai-python ------------------------------------

def test_the_fake_azure_stream_is_what_azure_openai_reads() -> None:
    with Stack() as stack:
        assert stack.fake is not None
        client = openai.AzureOpenAI(api_key="k", azure_endpoint=stack.fake.base_url,
                                    api_version=DEFAULT_API_VERSION, max_retries=0)
        chunks = list(client.chat.completions.create(
            model="dep", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": '#fake {"tokens": 2}'}]))
        assert chunks[0].choices == [] and chunks[0].model_extra["prompt_filter_results"]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
            "tok0 tok1 "
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2
        missing_version = httpx.post(stack.fake.base_url +
                                     "/openai/deployments/dep/chat/completions", json={})
        assert missing_version.status_code == 404
