"""The two compatible APIs as the gateway serves them: how each reads a request, frames
a stream, assembles a whole answer and shapes an error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sseserver.compat.assemble import Assembler, ChatCompletionAssembler, MessageAssembler
from sseserver.compat.errors import compat_status, reshape
from sseserver.compat.requests import CompatRequest, parse_chat_request, parse_messages_request
from sseserver.formats.anthropic_messages import AnthropicMessagesFormatter
from sseserver.formats.base import Formatter
from sseserver.formats.openai_chat import OpenAIChatFormatter


@dataclass(frozen=True, slots=True)
class CompatAPI:
    name: str  # the wire format: "openai" or "anthropic"
    parse: Callable[[bytes], CompatRequest]
    assembler: Callable[[int], Assembler]  # the unix time of the answer -> assembler

    def formatter(self, request: CompatRequest, created: int) -> Formatter:
        if self.name == "openai":
            return OpenAIChatFormatter(created, request.include_usage)
        return AnthropicMessagesFormatter()

    def shape(self, status: int, payload: dict[str, Any]) -> dict[str, Any]:
        return reshape(self.name, status, payload)

    def error_answer(self, status: int, upstream_status: int | None,
                     payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A failure the gateway answers with ``status`` (the provider having answered
        ``upstream_status``) as this API answers it: the status its SDK maps to the
        right exception class, and its error shape."""
        status = compat_status(self.name, status, upstream_status)
        return status, reshape(self.name, status, payload)


OPENAI_CHAT = CompatAPI("openai", parse_chat_request, ChatCompletionAssembler)
ANTHROPIC_MESSAGES = CompatAPI("anthropic", parse_messages_request, MessageAssembler)
