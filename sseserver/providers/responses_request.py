"""The request body of OpenAI's Responses API (reference/openai-responses-stream.md §1),
made from a Chat Completions body.

The gateway's own requests and both compatible endpoints already become a Chat
Completions body (:func:`sseserver.compat.upstream.openai_body`); this maps that one
shape to the Responses one: system and developer messages to ``instructions``, the
rest to input items (an assistant's tool calls to ``function_call`` items, a tool
message to a ``function_call_output``), flat function tools, ``max_output_tokens``.
A field with no Responses equivalent is refused with a 400 that names it, as the
compatible endpoints refuse across formats.
"""

from __future__ import annotations

from typing import Any

from sseserver.errors import RequestError

# Chat Completions fields the Responses API takes under the same name and meaning.
_SAME_FIELDS = ("model", "temperature", "top_p", "parallel_tool_calls", "metadata", "user",
                "store")
# Fields that carry nothing the Responses body needs: the gateway always streams, and
# the Responses API always reports usage.
_DROPPED_FIELDS = frozenset({"messages", "stream", "stream_options", "tools", "tool_choice",
                             "max_tokens", "max_completion_tokens", "reasoning_effort",
                             "n", "response_format"})


def responses_body(chat: dict[str, Any]) -> dict[str, Any]:
    """The Responses body for the Chat Completions body ``chat``. Raises
    :class:`RequestError` for a field or message with no Responses equivalent."""
    unmapped = sorted(set(chat) - _DROPPED_FIELDS - set(_SAME_FIELDS))
    if unmapped:
        raise RequestError(f"'{unmapped[0]}' has no equivalent in the Responses API")
    if chat.get("n", 1) != 1:
        raise RequestError("'n' other than 1 has no equivalent in the Responses API")
    instructions, items = _input_items(chat.get("messages"))
    body: dict[str, Any] = {key: chat[key] for key in _SAME_FIELDS if key in chat}
    body["input"] = items
    body["stream"] = True
    if instructions:
        body["instructions"] = "\n\n".join(instructions)
    limit = chat.get("max_completion_tokens", chat.get("max_tokens"))
    if limit is not None:
        body["max_output_tokens"] = limit
    if chat.get("tools"):
        body["tools"] = [_tool(tool) for tool in chat["tools"]]
    if "tool_choice" in chat:
        body["tool_choice"] = _tool_choice(chat["tool_choice"])
    if chat.get("reasoning_effort") is not None:
        body["reasoning"] = {"effort": chat["reasoning_effort"]}
    if chat.get("response_format") is not None:
        body["text"] = {"format": _text_format(chat["response_format"])}
    return body


def _text_format(response_format: Any) -> dict[str, Any]:
    """Chat Completions' ``response_format`` as the Responses API's ``text.format``: the
    same types, a JSON schema's fields one level up."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    schema = response_format.get("json_schema") if kind == "json_schema" else None
    if not isinstance(schema, dict):
        raise RequestError("'response_format' must be text, json_object or json_schema")
    return {"type": "json_schema", **schema}


def _input_items(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if not isinstance(messages, list):
        raise RequestError("'messages' must be a list")
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise RequestError("each message must be an object")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            instructions.append(content if isinstance(content, str) else _joined(content))
        elif role == "tool":
            items.append({"type": "function_call_output",
                          "call_id": str(message.get("tool_call_id") or ""),
                          "output": content if isinstance(content, str) else _joined(content)})
        elif role in ("user", "assistant"):
            if content:
                items.append({"role": role, "content": _content(role, content)})
            items.extend(_function_call(call) for call in message.get("tool_calls") or ())
        else:
            raise RequestError(f"role {role!r} has no equivalent in the Responses API")
    return instructions, items


def _content(role: str, content: Any) -> Any:
    """A string stays one; a list of Chat Completions parts becomes Responses parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError("a message's content must be a string or a list of parts")
    text_type = "output_text" if role == "assistant" else "input_text"
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": text_type, "text": part.get("text", "")})
        elif kind == "image_url" and role == "user":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append({"type": "input_image", "image_url": url})
        else:
            raise RequestError(f"a {kind!r} content part has no equivalent in the "
                               "Responses API")
    return parts


def _joined(content: Any) -> str:
    if not isinstance(content, list):
        raise RequestError("a message's content must be a string or a list of parts")
    return "".join(part.get("text", "") for part in content
                   if isinstance(part, dict) and isinstance(part.get("text"), str))


def _function_call(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise RequestError("each tool call needs a function with a name")
    return {"type": "function_call", "call_id": str(call.get("id") or ""),
            "name": function["name"], "arguments": function.get("arguments") or "{}"}


def _tool(tool: Any) -> dict[str, Any]:
    """``{"type": "function", "function": {...}}`` (what :func:`openai_tool` gives) as
    the Responses API's flat function tool."""
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise RequestError("only function tools have an equivalent in the Responses API")
    flat = {"type": "function", "name": function.get("name")}
    for key in ("description", "parameters", "strict"):
        if key in function:
            flat[key] = function[key]
    return flat


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        return {"type": "function", "name": name}
    return choice  # "auto", "none", "required": the same words
