"""Ollama's native ``/api/chat`` stream (reference/gemini-and-ollama-stream.md, Part 2),
sans-IO: one JSON object per line, LF-ended, ``done: true`` with the counts last, an
error as a line ``{"error": "..."}``; tool calls whole, their arguments an object."""

from __future__ import annotations

from typing import Any

import orjson

_dumps = orjson.dumps
CREATED_AT = "2025-08-20T13:48:24.421331Z"  # fixed: the streams stay reproducible


class OllamaWire:
    content_type = "application/x-ndjson"

    def __init__(self, model: str) -> None:
        self.model = model
        head = b'{"model":%b,"created_at":"%b","message":{"role":"assistant","content":' % (
            _dumps(model), CREATED_AT.encode())
        self._text_prefix = head
        self._text_suffix = b'},"done":false}\n'

    def _line(self, message: dict[str, Any], **fields: Any) -> bytes:
        return _dumps({"model": self.model, "created_at": CREATED_AT,
                       "message": {"role": "assistant", "content": "", **message},
                       "done": False, **fields}) + b"\n"

    def start(self) -> bytes:
        return b""  # Ollama's first line is already the first token

    def token(self, text: str) -> bytes:
        return self._text_prefix + _dumps(text) + self._text_suffix

    def thinking(self, texts: list[str]) -> bytes:
        return b"".join(self._line({"thinking": text}) for text in texts)

    def tool_call(self, name: str, arguments: str) -> bytes:
        return self._line({"tool_calls": [{"function": {
            "name": name, "arguments": orjson.loads(arguments) if arguments else {}}}]})

    def finish(self, reason: str, input_tokens: int, output_tokens: int,
               stop_sequence: str | None = None) -> bytes:
        return self._line({}, done=True, done_reason="stop", total_duration=171946792,
                          load_duration=38473250, prompt_eval_count=input_tokens,
                          prompt_eval_duration=27608250, eval_count=output_tokens,
                          eval_duration=105611917)

    def stream_error(self) -> bytes:
        return b'{"error":"an error was encountered while running the model"}\n'

    def malformed(self) -> bytes:
        return b"{not json\n"


def ollama_error_body(status: int, message: str) -> bytes:
    return _dumps({"error": message})
