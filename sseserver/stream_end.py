"""How a stream ended, and the one log line that says so.

Every stream, whatever ended it, logs one ``stream_end`` line of JSON on the
``sseserver.streams`` logger: its id, the name of the key it served (never the key),
how it ended, the provider and model it reached, its times, counts and attempts, and
the reason (already redacted by the relay).
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Protocol

import orjson

logger = logging.getLogger("sseserver.streams")


class StreamStatus(enum.StrEnum):
    """How a stream ended, for its log line and the server's counters."""

    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"  # the client left, or asked to stop


class EndedStream(Protocol):
    """What the line reads of a stream (a :class:`~sseserver.relay.Relay`)."""

    id: str
    key: str | None
    status: StreamStatus
    started: float  # on the loop's clock, as ``now`` below
    first_token_at: float | None
    attempts: int
    reason: str

    @property
    def events(self) -> int: ...


def log_stream_end(stream: EndedStream, provider: str | None, model: str | None,
                   now: float, bytes_sent: int) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    started, first_token_at = stream.started, stream.first_token_at
    record: dict[str, Any] = {
        "event": "stream_end", "id": stream.id, "key": stream.key, "status": stream.status,
        "provider": provider, "model": model,
        "ttft_ms": round((first_token_at - started) * 1000, 2) if first_token_at else None,
        "duration_ms": round((now - started) * 1000, 2), "events": stream.events,
        "bytes": bytes_sent, "attempts": stream.attempts, "reason": stream.reason,
    }
    logger.info(orjson.dumps(record).decode())
