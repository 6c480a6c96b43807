"""The exact bytes of the OpenAI and Anthropic streaming wire formats, sans-IO.

Per-token frames are one bytes format around a prebuilt prefix, so the fake can feed
thousands of streams in load benchmarks without becoming the bottleneck.
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol

import orjson

_ids = itertools.count(1)
_dumps = orjson.dumps
CREATED = 1727346172  # a fixed timestamp keeps the streams reproducible


def split_arguments(arguments: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(arguments) // parts))
    return [arguments[i:i + size] for i in range(0, len(arguments), size)] or [""]


class Wire(Protocol):
    def start(self) -> bytes: ...
    def token(self, text: str) -> bytes: ...
    def thinking(self, texts: list[str]) -> bytes: ...
    def tool_call(self, name: str, arguments: str) -> bytes: ...
    def finish(self, reason: str, input_tokens: int, output_tokens: int,
               stop_sequence: str | None = None) -> bytes: ...
    def stream_error(self) -> bytes: ...
    def malformed(self) -> bytes: ...


class OpenAIWire:
    """reference/openai-chat-stream.md §3-§8."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = f"chatcmpl-fake{next(_ids)}"
        self.include_usage = include_usage
        self._head = (b'{"id":"%b","object":"chat.completion.chunk","created":%d,"model":%b,'
                      b'"system_fingerprint":"fp_fake","choices":[' % (
                          self.id.encode(), CREATED, _dumps(model)))
        self._usage_null = b',"usage":null' if include_usage else b""
        self._text_prefix = b'data: ' + self._head + b'{"index":0,"delta":{"content":'
        self._text_suffix = b'},"logprobs":null,"finish_reason":null}]' + \
            self._usage_null + b"}\n\n"
        self._tool_index = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + self._head + _dumps(choice) + b"]" + self._usage_null + b"}\n\n"

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": "", "refusal": None})

    def token(self, text: str) -> bytes:
        return self._text_prefix + _dumps(text) + self._text_suffix

    def thinking(self, texts: list[str]) -> bytes:
        # OpenAI's own API streams no reasoning text; compatible servers (DeepSeek,
        # vLLM, Ollama) stream it as reasoning_content, which is what this imitates
        return b"".join(self._chunk({"reasoning_content": text}) for text in texts)

    def tool_call(self, name: str, arguments: str) -> bytes:
        index = self._tool_index
        self._tool_index += 1
        frames = [self._chunk({"tool_calls": [{
            "index": index, "id": f"call_fake{next(_ids)}", "type": "function",
            "function": {"name": name, "arguments": ""}}]})]
        frames.extend(self._chunk({"tool_calls": [{"index": index, "function": {
            "arguments": part}}]}) for part in split_arguments(arguments))
        return b"".join(frames)

    def finish(self, reason: str, input_tokens: int, output_tokens: int,
               stop_sequence: str | None = None) -> bytes:
        # a stop sequence met is a plain "stop" here: this format does not say which
        frame = self._chunk({}, "tool_calls" if reason == "tool_calls" else "stop")
        if self.include_usage:
            usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                     "total_tokens": input_tokens + output_tokens,
                     "prompt_tokens_details": {"cached_tokens": 0},
                     "completion_tokens_details": {"reasoning_tokens": 0}}
            frame += b"data: " + self._head + b"]," + b'"usage":' + _dumps(usage) + b"}\n\n"
        return frame + b"data: [DONE]\n\n"

    def stream_error(self) -> bytes:
        return (b'data: {"error":{"message":"The server had an error while processing your '
                b'request. Sorry about that!","type":"server_error","param":null,'
                b'"code":null}}\n\ndata: [DONE]\n\n')

    def malformed(self) -> bytes:
        return b"data: {not json\n\n"


def openai_error_body(status: int, message: str) -> bytes:
    kind = {400: "invalid_request_error", 401: "invalid_request_error",
            429: "rate_limit_exceeded"}.get(status, "server_error")
    return _dumps({"error": {"message": message, "type": kind, "param": None,
                             "code": "invalid_api_key" if status == 401 else None}})


class AnthropicWire:
    """reference/anthropic-messages-stream.md §2-§4."""

    def __init__(self, model: str, input_tokens: int) -> None:
        self.id = f"msg_fake{next(_ids)}"
        self.model = model
        self.input_tokens = input_tokens
        self._block = -1
        self._text_open = False

    @staticmethod
    def _event(name: str, payload: dict[str, Any]) -> bytes:
        return b"event: %b\ndata: %b\n\n" % (name.encode(), _dumps({"type": name, **payload}))

    def _open(self, block: dict[str, Any]) -> bytes:
        self._block += 1
        return self._event("content_block_start", {"index": self._block,
                                                   "content_block": block})

    def _close(self) -> bytes:
        return self._event("content_block_stop", {"index": self._block})

    def start(self) -> bytes:
        message = {"id": self.id, "type": "message", "role": "assistant", "content": [],
                   "model": self.model, "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": self.input_tokens, "output_tokens": 1}}
        return self._event("message_start", {"message": message}) + \
            self._event("ping", {})

    def token(self, text: str) -> bytes:
        frame = b""
        if not self._text_open:
            self._text_open = True
            frame = self._open({"type": "text", "text": ""})
        return frame + self._event("content_block_delta", {
            "index": self._block, "delta": {"type": "text_delta", "text": text}})

    def thinking(self, texts: list[str]) -> bytes:
        if not texts:
            return b""
        frames = [self._open({"type": "thinking", "thinking": ""})]
        frames.extend(self._event("content_block_delta", {
            "index": self._block, "delta": {"type": "thinking_delta", "thinking": t}})
            for t in texts)
        frames.append(self._event("content_block_delta", {
            "index": self._block, "delta": {"type": "signature_delta",
                                            "signature": "fakesig=="}}))
        frames.append(self._close())
        return b"".join(frames)

    def _end_text(self) -> bytes:
        if not self._text_open:
            return b""
        self._text_open = False
        return self._close()

    def tool_call(self, name: str, arguments: str) -> bytes:
        frames = [self._end_text(), self._open({
            "type": "tool_use", "id": f"toolu_fake{next(_ids)}", "name": name, "input": {}})]
        frames.extend(self._event("content_block_delta", {
            "index": self._block, "delta": {"type": "input_json_delta", "partial_json": part}})
            for part in ["", *split_arguments(arguments)])
        frames.append(self._close())
        return b"".join(frames)

    def finish(self, reason: str, input_tokens: int, output_tokens: int,
               stop_sequence: str | None = None) -> bytes:
        stop = "tool_use" if reason == "tool_calls" else "end_turn"
        if stop_sequence is not None and stop == "end_turn":
            stop = "stop_sequence"
        else:
            stop_sequence = None
        return self._end_text() + self._event("message_delta", {
            "delta": {"stop_reason": stop, "stop_sequence": stop_sequence},
            "usage": {"output_tokens": output_tokens}}) + self._event("message_stop", {})

    def stream_error(self) -> bytes:
        return self._event("error", {"error": {"type": "overloaded_error",
                                               "message": "Overloaded"}})

    def malformed(self) -> bytes:
        return b"event: content_block_delta\ndata: {not json\n\n"


def anthropic_error_body(status: int, message: str) -> bytes:
    kind = {400: "invalid_request_error", 401: "authentication_error",
            404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(
        status, "api_error")
    return _dumps({"type": "error", "error": {"type": kind, "message": message}})
