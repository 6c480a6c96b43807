"""``POST /v1/chat``: the body the AI SDK's ``DefaultChatTransport`` sends ``useChat``'s
messages in (reference/ai-sdk-ui-stream.md §1), as a generation request.

``{"id": <chat id>, "messages": [UIMessage...], "trigger", "messageId"}`` plus what the
app adds with the transport's ``body`` option: ``model`` (required: the transport
names none), and optionally ``provider``, ``system``, ``max_tokens``, ``temperature``.
UIMessages become a Chat Completions conversation (carried as a
:class:`~sseserver.schema.NativeRequest`, so either provider format can serve it): text
parts are the text, image ``file`` parts are images, and a tool part with its output
(``output-available`` or ``output-error``) is the assistant's call followed by its
result. Reasoning, sources, data parts and calls still waiting for their output are
not sent back to the model (as the AI SDK's own ``convertToModelMessages`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sseserver.errors import RequestError
from sseserver.schema import MAX_MESSAGES, GenerationRequest, Message, NativeRequest

# The body keys of DefaultChatTransport itself; the rest are the app's.
TRANSPORT_KEYS = frozenset({"id", "messages", "trigger", "messageId"})
APP_KEYS = frozenset({"model", "provider", "system", "max_tokens", "temperature"})
# A chat id is a URL path segment (GET /v1/chat/{id}/stream): kept short and plain.
MAX_CHAT_ID = 256
_FINISHED_TOOL_STATES = frozenset({"output-available", "output-error"})


@dataclass(frozen=True, slots=True)
class ChatTurn:
    chat_id: str
    generation: GenerationRequest


def parse_ui_chat(body: bytes) -> ChatTurn:
    """Raises :class:`RequestError` (400) saying what is wrong."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise RequestError("body must be a JSON object")
    unknown = sorted(set(raw) - TRANSPORT_KEYS - APP_KEYS)
    if unknown:
        raise RequestError(f"unknown field(s): {', '.join(unknown)}")
    chat_id = raw.get("id")
    if not isinstance(chat_id, str) or not chat_id or len(chat_id) > MAX_CHAT_ID or \
            "/" in chat_id:
        raise RequestError("'id' must be the chat id, a string without '/'")
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("'model' is required: add it with the transport's body option, "
                           "new DefaultChatTransport({api, body: {model: \"...\"}})")
    ui_messages = raw.get("messages")
    if not isinstance(ui_messages, list) or not ui_messages or \
            len(ui_messages) > MAX_MESSAGES:
        raise RequestError("'messages' must be a non-empty array of UI messages")
    chat = _chat_body(raw, ui_messages)
    provider = raw.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise RequestError("'provider' must be a string")
    generation = GenerationRequest(
        model=model, provider=provider, format="ai-sdk", resumable=True,
        max_tokens=chat.get("max_completion_tokens"),
        messages=tuple(Message(m["role"], m.get("content") or "") for m in chat["messages"]),
        native=NativeRequest("openai", chat))
    return ChatTurn(chat_id, generation)


def _chat_body(raw: dict[str, Any], ui_messages: list[Any]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = raw.get("system")
    if system is not None:
        if not isinstance(system, str):
            raise RequestError("'system' must be a string")
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(ui_messages):
        messages.extend(_convert(message, f"messages[{index}]"))
    if not messages:
        raise RequestError("the messages hold no text to send")
    chat: dict[str, Any] = {"model": raw["model"], "messages": messages}
    max_tokens = raw.get("max_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise RequestError("'max_tokens' must be a positive integer")
        chat["max_completion_tokens"] = max_tokens
    temperature = raw.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise RequestError("'temperature' must be a number")
        chat["temperature"] = temperature
    return chat


def _convert(message: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
        raise RequestError(f"{where} must be a UI message {{id, role, parts}}")
    role, parts = message.get("role"), message["parts"]
    if role == "assistant":
        return _assistant_turns(parts)
    if role not in ("user", "system"):
        raise RequestError(f"{where}.role must be system, user or assistant")
    content = _user_content(parts)
    return [{"role": role, "content": content}] if content else []


def _user_content(parts: list[Any]) -> str | list[dict[str, Any]]:
    texts = [p["text"] for p in parts if _is(p, "text") and isinstance(p.get("text"), str)]
    images = [{"type": "image_url", "image_url": {"url": p["url"]}} for p in parts
              if _is(p, "file") and str(p.get("mediaType", "")).startswith("image/")
              and isinstance(p.get("url"), str)]
    if not images:
        return "".join(texts)
    return [*({"type": "text", "text": t} for t in texts), *images]


def _is(part: Any, kind: str) -> bool:
    return isinstance(part, dict) and part.get("type") == kind


def _assistant_turns(parts: list[Any]) -> list[dict[str, Any]]:
    """One assistant turn per step, each followed by the results of its tool calls."""
    turns: list[dict[str, Any]] = []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for part in [*parts, {"type": "step-start"}]:
        if _is(part, "step-start"):
            if texts or calls:
                turn: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
                if calls:
                    turn["tool_calls"] = calls
                turns += [turn, *results]
            texts, calls, results = [], [], []
        elif _is(part, "text") and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif _tool_name(part) and part.get("state") in _FINISHED_TOOL_STATES:
            call, result = _tool_exchange(part)
            calls.append(call)
            results.append(result)
    return turns


def _tool_name(part: Any) -> str | None:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        return None
    if part["type"] == "dynamic-tool":
        return str(part.get("toolName") or "") or None
    return part["type"][len("tool-"):] or None if part["type"].startswith("tool-") else None


def _tool_exchange(part: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    call_id = str(part.get("toolCallId") or "")
    call = {"id": call_id, "type": "function", "function": {
        "name": _tool_name(part), "arguments": orjson.dumps(part.get("input") or {}).decode()}}
    if part.get("state") == "output-error":
        content = f"Error: {part.get('errorText') or ''}"
    else:
        output = part.get("output")
        content = output if isinstance(output, str) else orjson.dumps(output).decode()
    return call, {"role": "tool", "tool_call_id": call_id, "content": content}
