"""A Chat Completions request as an Anthropic Messages request.

Every field is either mapped or refused with a 400 naming it: nothing is dropped
silently. Refused are the fields the Messages API has no equivalent for (``seed``,
``logprobs``, penalties, JSON response formats...), and values out of its range.
"""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.errors import RequestError

# The Messages API requires max_tokens; a request without one gets this (as on /v1/stream).
DEFAULT_MAX_TOKENS = 4096
# Thinking budgets for OpenAI's reasoning_effort levels. 1024 is the smallest budget the
# Messages API takes; the others step up by four as OpenAI's levels roughly do.
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
MIN_THINKING_BUDGET = 1024
# Temperature ranges 0-1 on the Messages API (0-2 on Chat Completions).
MAX_TEMPERATURE = 1.0

_MAPPED = frozenset({
    "model", "messages", "stream", "stream_options", "n", "max_tokens",
    "max_completion_tokens", "temperature", "top_p", "stop", "tools", "tool_choice",
    "parallel_tool_calls", "user", "metadata", "reasoning_effort", "response_format",
})
_MESSAGE_KEYS = {
    "system": {"role", "content"}, "developer": {"role", "content"},
    "user": {"role", "content"}, "assistant": {"role", "content", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}


def messages_body_from_chat(chat: dict[str, Any], model: str) -> dict[str, Any]:
    """The Messages body for ``chat`` (a checked Chat Completions body), streaming.

    Raises :class:`RequestError` (400) naming the first field that cannot be mapped.
    """
    refuse_unmapped(chat, _MAPPED, "the Anthropic Messages API", "an OpenAI-format")
    system, messages = _messages(chat["messages"])
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
    if system:
        body["system"] = "\n\n".join(system)
    _limits(chat, body)
    _sampling(chat, body)
    _tools(chat, body)
    _metadata(chat, body)
    return body


def refuse_unmapped(body: dict[str, Any], mapped: frozenset[str], api: str, kind: str
                    ) -> None:
    unmapped = sorted(set(body) - mapped)
    if unmapped:
        raise RequestError(
            f"field(s) {', '.join(repr(n) for n in unmapped)} have no equivalent in {api} "
            f"of the provider this model is routed to: remove them, or route the model to "
            f"{kind} provider, which gets them unchanged")


def _messages(items: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"messages[{index}]"
        role = item["role"]
        extra = sorted(set(item) - _MESSAGE_KEYS[role])
        if extra:
            raise RequestError(f"{where}.{extra[0]} has no equivalent in the Anthropic "
                               "Messages API")
        if role in ("system", "developer"):  # the Messages API has a top-level system
            system.append(plain_text(item.get("content"), where))
        elif role == "user":
            _append(messages, "user", _user_blocks(item["content"], where))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(item, where))
        else:
            _append(messages, "user", [_tool_result(item, where)])
    return system, messages


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Consecutive turns of one role become one (tool results of parallel calls go in
    the one user turn after the calls, as the Messages API asks)."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def plain_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_part(part, f"{where}.content[{i}]")
                       for i, part in enumerate(content))
    raise RequestError(f"{where}.content must be a string or an array of text parts")


def _text_part(part: Any, where: str) -> str:
    if not isinstance(part, dict) or part.get("type") != "text" or \
            not isinstance(part.get("text"), str):
        raise RequestError(f"{where} must be a text part here")
    return str(part["text"])


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for i, part in enumerate(content):
        part_where = f"{where}.content[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image_url":
            blocks.append(_image(part.get("image_url"), part_where))
        else:
            blocks.append({"type": "text", "text": _text_part(part, part_where)})
    return blocks


def _image(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        raise RequestError(f"{where}.image_url.url must be a string")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type, _, encoding = header[5:].partition(";")
        if encoding != "base64":
            raise RequestError(f"{where}: a data URL image must be base64")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                            "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _assistant_blocks(item: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = plain_text(item.get("content") or "", where)
    refusal = item.get("refusal")
    if isinstance(refusal, str):
        text += refusal
    if text:
        blocks.append({"type": "text", "text": text})
    calls = item.get("tool_calls") or []
    if not isinstance(calls, list):
        raise RequestError(f"{where}.tool_calls must be an array")
    blocks.extend(_tool_use(call, f"{where}.tool_calls[{i}]") for i, call in enumerate(calls))
    return blocks


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or \
            not isinstance(call.get("id"), str):
        raise RequestError(f"{where} must be {{id, type: function, function: {{name, "
                           "arguments}}}")
    try:
        arguments = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        raise RequestError(f"{where}.function.arguments is not valid JSON") from None
    if not isinstance(arguments, dict):
        raise RequestError(f"{where}.function.arguments must be a JSON object")
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}


def _tool_result(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = item.get("tool_call_id")
    if not isinstance(call_id, str):
        raise RequestError(f"{where}.tool_call_id is required for a tool message")
    return {"type": "tool_result", "tool_use_id": call_id,
            "content": plain_text(item.get("content") or "", where)}


def _limits(chat: dict[str, Any], body: dict[str, Any]) -> None:
    limit = chat.get("max_completion_tokens", chat.get("max_tokens"))
    effort = chat.get("reasoning_effort")
    budget = _budget(effort)
    if budget is None:
        body["max_tokens"] = limit or DEFAULT_MAX_TOKENS
        return
    if limit is None:
        limit = budget + DEFAULT_MAX_TOKENS  # room for the answer after the thinking
    budget = min(budget, limit - 1)  # both APIs count reasoning in the output limit
    if budget < MIN_THINKING_BUDGET:
        raise RequestError(f"'reasoning_effort' needs 'max_completion_tokens' above "
                           f"{MIN_THINKING_BUDGET} on an Anthropic provider (its smallest "
                           "thinking budget)")
    body["max_tokens"] = limit
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _budget(effort: Any) -> int | None:
    if effort is None or effort in ("none", "minimal"):
        return None
    if effort not in EFFORT_BUDGETS:
        raise RequestError("'reasoning_effort' must be one of none, minimal, "
                           f"{', '.join(EFFORT_BUDGETS)}")
    return EFFORT_BUDGETS[effort]


def _sampling(chat: dict[str, Any], body: dict[str, Any]) -> None:
    temperature = chat.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or temperature > MAX_TEMPERATURE:
            raise RequestError("'temperature' above 1 is out of range for an Anthropic "
                               "provider (0 to 1)")
        body["temperature"] = temperature
    if chat.get("top_p") is not None:
        body["top_p"] = chat["top_p"]
    stop = chat.get("stop")
    if stop is not None:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    response_format = chat.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise RequestError("'response_format' other than {\"type\": \"text\"} has no "
                           "equivalent in the Anthropic Messages API")


def _tools(chat: dict[str, Any], body: dict[str, Any]) -> None:
    tools = chat.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise RequestError("'tools' must be an array")
        body["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = _tool_choice(chat.get("tool_choice"))
    if chat.get("parallel_tool_calls") is False:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        body["tool_choice"] = choice


def _tool(tool: Any, where: str) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function" or \
            not isinstance(function.get("name"), str):
        raise RequestError(f"{where} must be {{type: function, function: {{name, ...}}}}")
    if function.get("strict"):
        raise RequestError(f"{where}.function.strict has no equivalent in the Anthropic "
                           "Messages API")
    converted: dict[str, Any] = {"name": function["name"], "input_schema": function.get(
        "parameters") or {"type": "object", "properties": {}}}
    if "description" in function:
        converted["description"] = function["description"]
    return converted


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    simple = {"auto": "auto", "required": "any", "none": "none"}
    if isinstance(choice, str) and choice in simple:
        return {"type": simple[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise RequestError("'tool_choice' must be none, auto, required or "
                       "{type: function, function: {name}}")


def _metadata(chat: dict[str, Any], body: dict[str, Any]) -> None:
    metadata = chat.get("metadata") or {}
    if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
        raise RequestError("'metadata' maps to the Anthropic Messages API only as "
                           "{\"user_id\": ...}; other keys have no equivalent there")
    user = chat.get("user", metadata.get("user_id"))
    if user is not None:
        body["metadata"] = {"user_id": user}
