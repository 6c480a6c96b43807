"""The embedded stream store: resumable streams in this process's memory.

The registry (:class:`~sseserver.streams.memory.MemoryStore`) and its sweeper, which
forgets finished streams after ``streams.retention`` and cancels generations nobody
has read for ``streams.detached_idle_timeout``. No round trip to anything: a reader
gets the same bytes objects as the log holds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sseserver.config import StreamSettings
from sseserver.core.stream_log import StreamLog
from sseserver.errors import RequestError
from sseserver.relay import RelayState
from sseserver.streams.memory import MemoryStore
from sseserver.streams.store import Resumable

if TYPE_CHECKING:
    from sseserver.formats.base import Formatter

# The sweeper's period: a quarter of the retention, so a finished stream is forgotten
# at most a quarter late, between 50 ms (no busy loop for tiny test retentions) and
# 1 s (a detached generation is cancelled within a second of its limit).
SWEEP_MIN = 0.05
SWEEP_MAX = 1.0


def not_found(stream_id: str) -> RequestError:
    return RequestError(f"no stream {stream_id!r} (never existed, or expired)",
                        status=404, error_type="not_found_error")


class LocalStreams:
    """The streams this process generates, readable by its own clients."""

    shared = False

    def __init__(self, settings: StreamSettings) -> None:
        self.settings = settings
        self.registry: MemoryStore[Resumable] = MemoryStore(settings.retention)
        self._sweeper: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.registry!r}>"

    def __len__(self) -> int:
        return len(self.registry)

    def check_available(self) -> None:
        pass  # memory is always there; the stream bounds are the log's

    def new_log(self, stream_id: str) -> StreamLog:
        return StreamLog(self.settings.max_events, self.settings.max_bytes)

    def add(self, resumable: Resumable, formatter: Formatter) -> None:
        self.registry.add(resumable.relay.id, resumable)
        self._schedule_sweep()

    def get(self, stream_id: str) -> Resumable | None:
        return self.registry.get(stream_id)

    def values(self) -> list[Resumable]:
        return self.registry.values()

    def subscribe(self, stream_id: str, conn: Any, after: int) -> None:
        resumable = self.get(stream_id)
        if resumable is None:
            raise not_found(stream_id)
        subscribe_local(resumable, conn, after)

    def subscribe_chat(self, chat_id: str, conn: Any) -> None:
        resumable = self.running_turn(chat_id)
        if resumable is None:
            conn.respond(204, [], b"")
            return
        resumable.output.subscribe(conn, 0, resumable.headers)

    def running_turn(self, chat_id: str) -> Resumable | None:
        """The chat's latest turn running in this process."""
        running = [r for r in self.registry.values() if r.chat_id == chat_id and
                   r.relay.state is not RelayState.ENDED]
        return max(running, key=lambda r: r.relay.started) if running else None

    def cancel(self, stream_id: str, conn: Any) -> None:
        resumable = self.get(stream_id)
        if resumable is None:
            raise not_found(stream_id)
        conn.respond_json(200, {"id": stream_id, "status": cancel_local(resumable)})

    def ended(self, stream_id: str) -> None:
        self.registry.mark_ended(stream_id, asyncio.get_running_loop().time())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _schedule_sweep(self) -> None:
        if self._sweeper is None:
            interval = max(SWEEP_MIN, min(SWEEP_MAX, self.settings.retention / 4))
            self._sweeper = asyncio.get_running_loop().call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Forget expired streams; cancel generations nobody has read for too long."""
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        self.forget(self.registry.expire(now))
        idle_limit = self.settings.detached_idle_timeout
        for resumable in self.registry.values():
            alone = resumable.output.alone_since
            if resumable.relay.state is not RelayState.ENDED and alone is not None and \
                    now - alone >= idle_limit and not self.read_elsewhere(resumable):
                resumable.relay.cancel("no reader for too long")
        if len(self.registry):
            self._schedule_sweep()

    def forget(self, stream_ids: list[str]) -> None:
        """Streams past their retention, just dropped from the registry."""

    def read_elsewhere(self, resumable: Resumable) -> bool:
        """Whether a reader in another process follows the stream."""
        return False


def subscribe_local(resumable: Resumable, conn: Any, after: int) -> None:
    """A reader of this process's stream: straight from its log."""
    log = resumable.output.log
    if log.finished and after >= log.last_id:
        # nothing left to send: 204 tells an EventSource to stop reconnecting
        conn.respond(204, [], b"")
        return
    resumable.output.subscribe(conn, min(after, log.last_id), resumable.headers)


def cancel_local(resumable: Resumable) -> str:
    """Stop a generation of this process; what it was: "cancelled" or "ended"."""
    was_running = resumable.relay.state is not RelayState.ENDED
    resumable.relay.cancel("the stream was cancelled by a client")
    return "cancelled" if was_running else "ended"
