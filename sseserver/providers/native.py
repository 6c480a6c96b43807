"""What a compatible endpoint's request (Chat Completions or Messages, kept whole in
``GenerationRequest.native``) asks beyond its messages, for providers of a third wire
format (Gemini, Bedrock): the tools, the temperature, Anthropic's top-level system
text. A tool-call history has no mapping there yet and is refused, never dropped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sseserver.errors import RequestError
from sseserver.schema import GenerationRequest

# Content parts that carry a tool call or its result (Anthropic's blocks): the
# conversation would change meaning without them.
_TOOL_PARTS = frozenset({"tool_use", "tool_result", "server_tool_use"})


@dataclass(frozen=True, slots=True)
class RequestFields:
    system: tuple[str, ...]
    tools: tuple[dict[str, Any], ...]
    temperature: float | None


def request_fields(request: GenerationRequest, provider_kind: str) -> RequestFields:
    """The request's system texts, tools and temperature, from its own fields or, for
    a compatible endpoint's request, from the body it came with."""
    system = (request.system,) if request.system else ()
    if request.native is None:
        return RequestFields(system, request.tools, request.temperature)
    body = request.native.body
    _refuse_tool_history(body.get("messages"), provider_kind)
    tools = body.get("tools") or ()
    if not isinstance(tools, list | tuple) or not all(isinstance(t, dict) for t in tools):
        raise RequestError("'tools' must be an array of objects")
    temperature = body.get("temperature")
    if temperature is not None and (isinstance(temperature, bool)
                                    or not isinstance(temperature, int | float)):
        raise RequestError("'temperature' must be a number")
    return RequestFields((*system, *_system_texts(body.get("system"))), tuple(tools),
                         temperature)


def _system_texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(block["text"] for block in value
                     if isinstance(block, dict) and isinstance(block.get("text"), str))
    return ()


def _refuse_tool_history(messages: Any, provider_kind: str) -> None:
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        parts = content if isinstance(content, list) else ()
        if message.get("tool_calls") or any(
                isinstance(part, dict) and part.get("type") in _TOOL_PARTS for part in parts):
            raise RequestError(f"tool calls in the conversation are not supported by "
                               f"{provider_kind} providers yet")


def content_text(content: Any) -> str:
    """A message's text: the string, or its text parts joined (Gemini and Bedrock take
    text turns; images and other parts have no mapping there yet)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    raise RequestError("message content must be a string or a list of text parts")


def flat_tool(tool: dict[str, Any]) -> tuple[str, str | None, Any]:
    """A tool's name, description and parameter schema (None where absent), from
    OpenAI's ``{type: function, function}`` or the flat ``{name, parameters}`` shape.

    Raises :class:`RequestError` for a tool without a name."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        tool = tool["function"]
    if not isinstance(tool.get("name"), str):
        raise RequestError("each tool needs a 'name'")
    return tool["name"], tool.get("description"), tool.get("parameters",
                                                           tool.get("input_schema"))
