"""Azure OpenAI: the Chat Completions wire format behind Azure's URLs and key header.

Two URL forms, as the recordings show them (``az_*``): a resource endpoint
(``https://NAME.openai.azure.com``) is called at
``/openai/deployments/{deployment}/chat/completions?api-version=...``, the deployment
being the model name unless the provider names one; a base URL ending in
``/openai/v1`` is Azure's v1 API, called at ``/chat/completions`` with the model name
in the body (and an ``api-version`` only when one is configured). The key goes in the
``api-key`` header, as openai-python's ``AzureOpenAI`` sends it.

The stream is OpenAI's with Azure's additions: a first chunk with no choices, only
``prompt_filter_results``, and ``content_filter_results`` on every choice. Both carry
nothing to relay; a reply the content filter cut (``finish_reason: content_filter``)
is an error, never a clean end that hides the truncation.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sseserver.events import ErrorEvent, Finish, NormalizedEvent
from sseserver.providers.base import UpstreamRequest
from sseserver.providers.openai import OpenAIAdapter, OpenAIProvider
from sseserver.providers.shapes import optional_list, optional_object, wire_token
from sseserver.schema import GenerationRequest

# The newest generally available data-plane version the recordings were made with
# (az_text_deployments); a provider's api_version (or OPENAI_API_VERSION) overrides it.
DEFAULT_API_VERSION = "2024-10-21"
V1_SUFFIX = "/openai/v1"
# A content filter category's name is a short identifier ("hate", "self_harm",
# "protected_material_code"); more than a handful would be no message a client reads.
MAX_FILTER_CATEGORIES = 8


class AzureOpenAIProvider(OpenAIProvider):
    def build_request(self, request: GenerationRequest, model: str) -> UpstreamRequest:
        chat = super().build_request(request, model)
        headers = [(name, value) for name, value in chat.headers if name != "authorization"]
        if self.settings.api_key:
            headers.append(("api-key", self.settings.api_key))
        return UpstreamRequest("POST", self.url(model), tuple(headers), chat.body)

    def url(self, model: str) -> str:
        base, version = self.settings.base_url, self.settings.api_version
        if base.endswith(V1_SUFFIX):
            return f"{base}/chat/completions" + (f"?api-version={quote(version)}"
                                                 if version else "")
        # quoted whole: a model name from a request must not reach another path
        deployment = quote(self.settings.deployment or model, safe="")
        return f"{base}/openai/deployments/{deployment}/chat/completions" \
            f"?api-version={quote(version or DEFAULT_API_VERSION, safe='')}"

    def new_adapter(self) -> AzureAdapter:
        return AzureAdapter()


class AzureAdapter(OpenAIAdapter):
    __slots__ = ()

    def _chunk_events(self, chunk: Any) -> list[NormalizedEvent]:
        events = super()._chunk_events(chunk)
        for position, event in enumerate(events):
            if type(event) is Finish and event.reason == "content_filter":
                events[position] = ErrorEvent(
                    "content_filter", _filtered_message(chunk), retryable=False)
                del events[position + 1:]
                break
        return events


def _filtered_message(chunk: dict[str, Any]) -> str:
    """What the filter cut the reply for: the categories Azure marks ``filtered``."""
    choices = optional_list(chunk.get("choices"), "choices") or [{}]
    results = optional_object(choices[0].get("content_filter_results"),
                              "content_filter_results") or {}
    categories = [wire_token(name, "other") for name, result in results.items()
                  if type(result) is dict and result.get("filtered") is True]
    named = ", ".join(categories[:MAX_FILTER_CATEGORIES])
    return "the provider's content filter cut the reply" + (f" ({named})" if named else "")
