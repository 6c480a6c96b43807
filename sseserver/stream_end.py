"""How a stream ended, and the one log line that says so.

Every stream, whatever ended it, logs one ``stream_end`` line of JSON on the
``sseserver.streams`` logger: its id, the name of the key it served (never the key),
how it ended, the provider and model it reached, its times, counts and attempts, and
the reason (already redacted by the relay).

The server writes every log line as its message alone: :class:`MessageFormatter`
writes exactly what ``Formatter("%(message)s")`` writes, without the format string's
dictionary lookup and the traceback checks when a record carries none (a record with
one goes the general way); :class:`LineHandler` writes each line to a line-buffered
stream (stderr is one) without flushing it again after the write did.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Protocol, TextIO

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


def log_streams_directly(handler: logging.Handler) -> None:
    """Give the ``sseserver.streams`` logger ``handler``, the root's one handler, and
    stop its lines propagating: the same lines through the same handler, found without
    climbing past two loggers that have none (a stream's line is the server's most
    frequent). Nothing changes when the root has other or more handlers (a process
    that configured logging itself)."""
    if logging.getLogger().handlers == [handler]:
        logger.addHandler(handler)
        logger.propagate = False


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


class MessageFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        # set as Formatter.format sets it: a filter or handler after this may read it
        record.message = message = record.getMessage()
        return message


class LineHandler(logging.StreamHandler[TextIO]):
    """A :class:`logging.StreamHandler` whose line, on a line-buffered stream, is in
    the file when the write returns: the handler's flush after it (a lock and a call
    that find nothing to write) is left out. Any other stream or terminator is written
    and flushed as StreamHandler does; ``flush()`` itself flushes as ever.

    :meth:`handle` is :class:`logging.Handler`'s, with the filters asked only when
    there are any and the handler's lock taken as a context (its acquire and release
    are three Python calls a line)."""

    def handle(self, record: logging.LogRecord) -> bool | logging.LogRecord:
        checked: bool | logging.LogRecord = True
        if self.filters:
            checked = self.filter(record)
            if not checked:
                return checked
            if isinstance(checked, logging.LogRecord):  # a filter's copy (3.12)
                record = checked
        with self.lock:  # type: ignore[union-attr]  # made by createLock in __init__
            self.emit(record)
        return checked

    def emit(self, record: logging.LogRecord) -> None:
        stream = self.stream
        if self.terminator != "\n" or not getattr(stream, "line_buffering", False):
            super().emit(record)
            return
        try:
            stream.write(self.format(record) + "\n")
        except RecursionError:  # as StreamHandler.emit: not a handler's error to report
            raise
        except Exception:
            self.handleError(record)
