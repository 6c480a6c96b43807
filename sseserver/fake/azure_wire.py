"""Azure OpenAI's Chat Completions stream, sans-IO: OpenAI's chunks with Azure's
additions as the recordings show them (``az_*``): a first chunk with no choices and
``prompt_filter_results``, ``content_filter_results`` on every choice."""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.fake.wire import OpenAIWire

_SAFE = {"filtered": False, "severity": "safe"}
FILTER_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
_PROMPT_FILTER = b'data: ' + orjson.dumps({
    "choices": [], "created": 0, "id": "", "model": "", "object": "",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
        **FILTER_RESULTS, "jailbreak": {"filtered": False, "detected": False}}}]}) + b"\n\n"


class AzureWire(OpenAIWire):
    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._text_suffix = b'},"content_filter_results":' + orjson.dumps(FILTER_RESULTS) + \
            self._text_suffix[1:]

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "content_filter_results": {}, "logprobs": None,
                  "finish_reason": finish}
        return b"data: " + self._head + orjson.dumps(choice) + b"]" + self._usage_null + \
            b"}\n\n"

    def start(self) -> bytes:
        return _PROMPT_FILTER + super().start()


def azure_route(path: str) -> bool:
    """Whether ``path`` is one of Azure's chat completions paths: a deployment's, or
    the v1 API's."""
    if path == "/openai/v1/chat/completions":
        return True
    parts = path.split("/")
    return len(parts) == 6 and parts[:3] == ["", "openai", "deployments"] and \
        bool(parts[3]) and parts[4:] == ["chat", "completions"]
