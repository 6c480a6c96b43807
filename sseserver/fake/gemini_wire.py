"""The bytes of Gemini's ``streamGenerateContent?alt=sse`` stream, sans-IO
(reference/gemini-and-ollama-stream.md): one whole GenerateContentResponse per event,
CRLF framing as the live API sends it, no end marker."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

_ids = itertools.count(1)
_dumps = orjson.dumps
CONTENT_TYPE = "text/event-stream"
# google-rpc status names of the HTTP statuses the fake fails with
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class GeminiWire:
    content_type = CONTENT_TYPE

    def __init__(self, model: str, input_tokens: int) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.id = f"gemini-fake{next(_ids)}"
        self._tail = b'],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":%d,' \
            b'"totalTokenCount":%d},"modelVersion":%b,"responseId":"%b"}\r\n\r\n' % (
                input_tokens, input_tokens, _dumps(model), self.id.encode())
        self._text_prefix = b'data: {"candidates":[{"content":{"parts":[{"text":'

    def _chunk(self, parts: list[dict[str, Any]], finish: str | None = None,
               usage: dict[str, int] | None = None) -> bytes:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        chunk = {"candidates": [candidate],
                 "usageMetadata": usage or {"promptTokenCount": self.input_tokens,
                                            "totalTokenCount": self.input_tokens},
                 "modelVersion": self.model, "responseId": self.id}
        return b"data: " + _dumps(chunk) + b"\r\n\r\n"

    def start(self) -> bytes:
        return b""  # the first chunk carries the first text

    def token(self, text: str) -> bytes:
        return self._text_prefix + _dumps(text) + b"}" + self._tail

    def thinking(self, texts: list[str]) -> bytes:
        return b"".join(self._chunk([{"text": text, "thought": True}]) for text in texts)

    def tool_call(self, name: str, arguments: str) -> bytes:
        try:
            args = orjson.loads(arguments) if arguments else {}
        except orjson.JSONDecodeError:
            args = {}
        call = {"name": name, "args": args if isinstance(args, dict) else {}}
        return self._chunk([{"functionCall": call, "thoughtSignature": "ZmFrZQ=="}])

    def finish(self, reason: str, input_tokens: int, output_tokens: int,
               stop_sequence: str | None = None) -> bytes:
        # Gemini says STOP after a function call too
        return self._chunk([{"text": ""}], "STOP", {
            "promptTokenCount": input_tokens, "candidatesTokenCount": output_tokens,
            "totalTokenCount": input_tokens + output_tokens})

    def stream_error(self) -> bytes:
        return b'data: {"error":{"code":503,"message":"The model is overloaded. Please ' \
            b'try again later.","status":"UNAVAILABLE"}}\r\n\r\n'

    def malformed(self) -> bytes:
        return b"data: {not json\r\n\r\n"


def gemini_error_body(status: int, message: str) -> bytes:
    return _dumps({"error": {"code": status, "message": message,
                             "status": _STATUS_NAMES.get(status, "UNKNOWN")}})


def gemini_user_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The body's contents as role/content messages, for the script reader."""
    contents = body.get("contents")
    if not isinstance(contents, list):
        return []
    return [{"role": "user" if item.get("role") == "user" else "assistant",
             "content": item.get("parts") if isinstance(item.get("parts"), list) else ""}
            for item in contents if isinstance(item, dict)]
