"""The upstream body for a request of a compatible endpoint, per provider wire format.

Same format: the client's body unchanged but for the model (the route may rename it)
and streaming, which the gateway always asks for: a non-streaming answer is assembled
from the same stream. Other format: translated, or refused with a 400.
"""

from __future__ import annotations

from typing import Any

from sseserver.compat.to_anthropic import messages_body_from_chat
from sseserver.compat.to_openai import chat_body_from_messages
from sseserver.schema import NativeRequest


def openai_body(native: NativeRequest, model: str) -> dict[str, Any]:
    """The Chat Completions body. Raises :class:`RequestError` for what cannot be mapped."""
    if native.format == "openai":
        body = {**native.body, "model": model, "stream": True}
    else:
        body = chat_body_from_messages(native.body, model)
    # usage is what the gateway counts and reports, whether or not the client asked
    options = body.get("stream_options")
    body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                              "include_usage": True}
    return body


def anthropic_body(native: NativeRequest, model: str) -> dict[str, Any]:
    """The Messages body. Raises :class:`RequestError` for what cannot be mapped."""
    if native.format == "anthropic":
        return {**native.body, "model": model, "stream": True}
    return messages_body_from_chat(native.body, model)
