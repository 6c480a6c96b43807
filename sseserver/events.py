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
class ReasoningSignature:
    """The provider's signature over the reasoning just streamed (Anthropic's
    ``signature_delta``): opaque, and needed to send that reasoning back in a later
    turn. It closes the reasoning it signs. Formats that take no reasoning back (the
    default one among them) show nothing for it."""

    signature: str


@dataclass(frozen=True, slots=True)
class RedactedReasoning:
    """Reasoning the provider sent encrypted (Anthropic's ``redacted_thinking`` block):
    nothing to show, opaque ``data`` to send back in a later turn."""

    data: str


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
    """The provider said why generation stopped (``stop``, ``length``, ``tool_calls``...);
    ``stop_sequence`` is the caller's stop sequence that ended it, when the provider
    says which (its reason is then ``stop``)."""

    reason: str
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A failure after the stream started; always followed by the end of the stream."""

    type: str
    message: str
    retryable: bool
    status: int | None = None


NormalizedEvent = (TextDelta | ReasoningDelta | ReasoningSignature | RedactedReasoning |
                   ToolCallDelta | Usage | Finish | ErrorEvent)

# Events that commit a stream (DESIGN.md §4): once one reached the client, the gateway
# may no longer retry or fall back.
CONTENT_EVENTS = (TextDelta, ReasoningDelta, ToolCallDelta)
