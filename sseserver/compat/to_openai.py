"""An Anthropic Messages request as a Chat Completions request.

Every field is either mapped or refused with a 400 naming it. Three things are mapped
by convention rather than one to one, and the README says so: ``cache_control``
marks are left out (Chat Completions caches prompts by itself), thinking blocks of
earlier assistant turns are left out (Chat Completions takes no reasoning back), and
a ``tool_result`` with ``is_error`` is sent as its text prefixed with ``Error: ``.
"""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.compat.to_anthropic import refuse_unmapped
from sseserver.errors import RequestError

# OpenAI's reasoning_effort for an Anthropic thinking budget: below 4,096 tokens is
# "low", below 16,384 "medium", the rest "high" (the steps of to_anthropic.EFFORT_BUDGETS).
EFFORT_STEPS = ((4096, "low"), (16384, "medium"))
ADAPTIVE_EFFORT = "medium"  # OpenAI's own default

_MAPPED = frozenset({
    "model", "messages", "stream", "max_tokens", "system", "temperature", "top_p",
    "stop_sequences", "metadata", "tools", "tool_choice", "thinking",
})
_BLOCK_KEYS = frozenset({"type", "cache_control"})
_DROPPED_ASSISTANT_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def chat_body_from_messages(request: dict[str, Any], model: str) -> dict[str, Any]:
    """The Chat Completions body for ``request`` (a checked Messages body), streaming.

    Raises :class:`RequestError` (400) naming the first field that cannot be mapped.
    """
    refuse_unmapped(request, _MAPPED, "the OpenAI Chat Completions API",
                    "an Anthropic-format")
    messages: list[dict[str, Any]] = []
    system = request.get("system")
    if system:
        messages.append({"role": "system", "content": _system_text(system)})
    for index, item in enumerate(request["messages"]):
        _convert_message(item, f"messages[{index}]", messages)
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": True,
                            "max_completion_tokens": request["max_tokens"]}
    for key in ("temperature", "top_p"):
        if request.get(key) is not None:
            body[key] = request[key]
    if request.get("stop_sequences"):
        body["stop"] = request["stop_sequences"]
    _tools(request, body)
    _thinking(request.get("thinking"), body)
    _metadata(request.get("metadata"), body)
    return body


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    return "\n\n".join(_text(block, f"system[{i}]") for i, block in enumerate(system))


def _text(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text" or \
            not isinstance(block.get("text"), str):
        raise RequestError(f"{where} must be a text block here")
    _refuse_block_keys(block, {"text"}, where)
    return str(block["text"])


def _refuse_block_keys(block: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(block) - _BLOCK_KEYS - allowed)
    if extra:
        raise RequestError(f"{where}.{extra[0]} has no equivalent in the OpenAI Chat "
                           "Completions API")


def _convert_message(item: dict[str, Any], where: str, out: list[dict[str, Any]]) -> None:
    extra = sorted(set(item) - {"role", "content"})
    if extra:
        raise RequestError(f"{where}.{extra[0]} has no equivalent in the OpenAI Chat "
                           "Completions API")
    content = item["content"]
    if item["role"] == "assistant":
        out.append(_assistant(content, where))
    elif isinstance(content, str):
        out.append({"role": "user", "content": content})
    else:
        _user(content, where, out)


def _user(blocks: list[Any], where: str, out: list[dict[str, Any]]) -> None:
    """Tool results first, as tool messages right after the assistant's calls; then
    the rest of the turn as one user message."""
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        block_where = f"{where}.content[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            out.append(_tool_message(block, block_where))
        elif kind == "image":
            parts.append(_image(block, block_where))
        else:
            parts.append({"type": "text", "text": _text(block, block_where)})
    if parts:
        out.append({"role": "user", "content": parts})


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    _refuse_block_keys(block, {"source"}, where)
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = str(source.get("url"))
    else:
        raise RequestError(f"{where}.source must be a base64 or url image source")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_message(block: dict[str, Any], where: str) -> dict[str, Any]:
    _refuse_block_keys(block, {"tool_use_id", "content", "is_error"}, where)
    content = block.get("content") or ""
    text = content if isinstance(content, str) else "".join(
        _text(part, f"{where}.content[{i}]") for i, part in enumerate(content))
    if block.get("is_error"):
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": str(block.get("tool_use_id")), "content": text}


def _assistant(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        block_where = f"{where}.content[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_use":
            _refuse_block_keys(block, {"id", "name", "input"}, block_where)
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"),
                "arguments": orjson.dumps(block.get("input") or {}).decode()}})
        elif kind not in _DROPPED_ASSISTANT_BLOCKS:
            texts.append(_text(block, block_where))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(request: dict[str, Any], body: dict[str, Any]) -> None:
    tools = request.get("tools")
    if tools:
        body["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = request.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    simple = {"auto": "auto", "any": "required", "none": "none"}
    if kind in simple:
        body["tool_choice"] = simple[kind]
    elif kind == "tool" and isinstance(choice.get("name"), str):
        body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise RequestError("'tool_choice' must be {type: auto|any|none} or "
                           "{type: tool, name}")
    if choice.get("disable_parallel_tool_use"):
        body["parallel_tool_calls"] = False


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "custom") != "custom" or \
            not isinstance(tool.get("name"), str):
        raise RequestError(f"{where}: only client tools {{name, input_schema}} map to the "
                           "OpenAI Chat Completions API")
    _refuse_block_keys(tool, {"name", "description", "input_schema"}, where)
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool.get(
        "input_schema") or {"type": "object", "properties": {}}}
    if "description" in tool:
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _thinking(thinking: Any, body: dict[str, Any]) -> None:
    if thinking is None or not isinstance(thinking, dict):
        return
    kind = thinking.get("type")
    if kind == "disabled":
        return
    if kind == "adaptive":  # the model decides how long to think: OpenAI's default effort
        body["reasoning_effort"] = ADAPTIVE_EFFORT
        return
    if kind != "enabled" or not isinstance(thinking.get("budget_tokens"), int):
        raise RequestError("'thinking' must be {type: enabled, budget_tokens}, "
                           "{type: adaptive} or {type: disabled}")
    budget = thinking["budget_tokens"]
    body["reasoning_effort"] = next(
        (effort for limit, effort in EFFORT_STEPS if budget < limit), "high")


def _metadata(metadata: Any, body: dict[str, Any]) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
        raise RequestError("'metadata' takes only 'user_id'")
    if metadata.get("user_id") is not None:
        body["user"] = metadata["user_id"]
