"""The exact bytes of OpenAI's Responses API stream (reference/openai-responses-stream.md),
sans-IO: every event with its ``event:`` line, its ``type`` and ``sequence_number``, the
output items opened and closed as the API does, no ``[DONE]``.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from sseserver.fake.script import last_user_text
from sseserver.fake.wire import CREATED, split_arguments

_ids = itertools.count(1)
_dumps = orjson.dumps


class ResponsesWire:
    content_type = "text/event-stream; charset=utf-8"

    def __init__(self, model: str) -> None:
        self.id = f"resp_fake{next(_ids)}"
        self.model = model
        self._sequence = 0
        self._output: list[dict[str, Any]] = []  # finished output items
        self._message: str | None = None  # the id of the open message item
        self._text: list[str] = []
        self._calls = 0

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        sequence = self._sequence
        self._sequence += 1
        return b"event: %b\ndata: %b\n\n" % (kind.encode(), _dumps(
            {"type": kind, **payload, "sequence_number": sequence}))

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "response", "created_at": CREATED, "status": status,
                "model": self.model, "output": self._output, "usage": None, "error": None,
                "incomplete_details": None, **fields}

    def start(self) -> bytes:
        return self._event("response.created", {"response": self._response("in_progress")}) \
            + self._event("response.in_progress", {"response": self._response("in_progress")})

    def token(self, text: str) -> bytes:
        frame = b"" if self._message is not None else self._open_message()
        self._text.append(text)
        return frame + self._event("response.output_text.delta", {
            "item_id": self._message, "output_index": len(self._output), "content_index": 0,
            "delta": text, "logprobs": []})

    def _open_message(self) -> bytes:
        self._message = f"msg_fake{next(_ids)}"
        item = {"id": self._message, "type": "message", "status": "in_progress",
                "role": "assistant", "content": []}
        return self._event("response.output_item.added", {
            "output_index": len(self._output), "item": item}) + \
            self._event("response.content_part.added", {
                "item_id": self._message, "output_index": len(self._output),
                "content_index": 0, "part": {"type": "output_text", "text": "",
                                             "annotations": []}})

    def _close_message(self) -> bytes:
        if self._message is None:
            return b""
        where = {"item_id": self._message, "output_index": len(self._output),
                 "content_index": 0}
        text = "".join(self._text)
        part = {"type": "output_text", "text": text, "annotations": []}
        item = {"id": self._message, "type": "message", "status": "completed",
                "role": "assistant", "content": [part]}
        frames = self._event("response.output_text.done", {**where, "text": text,
                                                            "logprobs": []}) + \
            self._event("response.content_part.done", {**where, "part": part}) + \
            self._event("response.output_item.done", {"output_index": len(self._output),
                                                      "item": item})
        self._output.append(item)
        self._message, self._text = None, []
        return frames

    def thinking(self, texts: list[str]) -> bytes:
        if not texts:
            return b""
        item_id = f"rs_fake{next(_ids)}"
        where = {"item_id": item_id, "output_index": len(self._output), "summary_index": 0}
        text = "".join(texts)
        item = {"id": item_id, "type": "reasoning", "summary": []}
        frames = [self._event("response.output_item.added", {
            "output_index": len(self._output), "item": item}),
            self._event("response.reasoning_summary_part.added", {
                **where, "part": {"type": "summary_text", "text": ""}})]
        frames.extend(self._event("response.reasoning_summary_text.delta",
                                  {**where, "delta": t}) for t in texts)
        done = {**item, "summary": [{"type": "summary_text", "text": text}]}
        frames += [self._event("response.reasoning_summary_text.done", {**where, "text": text}),
                   self._event("response.reasoning_summary_part.done", {
                       **where, "part": {"type": "summary_text", "text": text}}),
                   self._event("response.output_item.done", {
                       "output_index": len(self._output), "item": done})]
        self._output.append(done)
        return b"".join(frames)

    def tool_call(self, name: str, arguments: str) -> bytes:
        self._calls += 1
        closed = self._close_message()  # before the index: the message takes its own
        item_id, index = f"fc_fake{next(_ids)}", len(self._output)
        item = {"id": item_id, "type": "function_call", "status": "in_progress",
                "call_id": f"call_fake{next(_ids)}", "name": name, "arguments": ""}
        frames = [closed, self._event("response.output_item.added", {
            "output_index": index, "item": item})]
        frames.extend(self._event("response.function_call_arguments.delta", {
            "item_id": item_id, "output_index": index, "delta": part})
            for part in split_arguments(arguments) if part)
        done = {**item, "status": "completed", "arguments": arguments}
        frames += [self._event("response.function_call_arguments.done", {
            "item_id": item_id, "output_index": index, "name": name, "arguments": arguments}),
            self._event("response.output_item.done", {"output_index": index, "item": done})]
        self._output.append(done)
        return b"".join(frames)

    def finish(self, reason: str, input_tokens: int, output_tokens: int,
               stop_sequence: str | None = None) -> bytes:
        usage = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": output_tokens,
                 "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": input_tokens + output_tokens}
        return self._close_message() + self._event("response.completed", {
            "response": self._response("completed", usage=usage)})

    def stream_error(self) -> bytes:
        error = {"code": "server_error", "message": "The server had an error while "
                 "processing your request. Sorry about that!"}
        return self._event("error", {**error, "param": None}) + \
            self._event("response.failed", {"response": self._response("failed", error=error)})

    def malformed(self) -> bytes:
        return b"event: response.output_text.delta\ndata: {not json\n\n"


def responses_input_text(value: Any) -> str:
    """The text of the last user input of a Responses request body's ``input``: the
    string itself, or the last user item's text, as a Chat Completions body's."""
    return value if isinstance(value, str) else last_user_text(value)
