"""Normalized events: the one vocabulary between provider adapters and output formats.

Adapters turn each provider's wire events into these; formats turn these into bytes.
Nothing provider-specific crosses this line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TextDelta:
    content: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    content: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """One fragment of a tool call; ``id`` and ``name`` come with the first fragment."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Finish:
    """The provider said why generation stopped (``stop``, ``length``, ``tool_calls``...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A failure after the stream started; always followed by the end of the stream."""

    type: str
    message: str
    retryable: bool
    status: int | None = None


NormalizedEvent = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish | ErrorEvent

# Events that commit a stream (DESIGN.md §4): once one reached the client, the gateway
# may no longer retry or fall back.
CONTENT_EVENTS = (TextDelta, ReasoningDelta, ToolCallDelta)
