"""The embedded stream store: resumable streams in this process's memory.

It only keeps track of what exists and for how long; the caller passes the time
(``now``) so that expiry is a plain function of the clock it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Entry(Generic[T]):
    value: T
    ended_at: float | None = None  # when generation ended; retention counts from here


class MemoryStore(Generic[T]):
    """Streams by id; an ended stream is forgotten ``retention`` seconds after its end."""

    def __init__(self, retention: float) -> None:
        self.retention = retention
        self._entries: dict[str, Entry[T]] = {}

    def __repr__(self) -> str:
        ended = sum(1 for e in self._entries.values() if e.ended_at is not None)
        return f"<MemoryStore streams={len(self._entries)} ended={ended}>"

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, stream_id: str, value: T) -> None:
        self._entries[stream_id] = Entry(value)

    def get(self, stream_id: str) -> T | None:
        entry = self._entries.get(stream_id)
        return entry.value if entry is not None else None

    def values(self) -> list[T]:
        return [entry.value for entry in self._entries.values()]

    def mark_ended(self, stream_id: str, now: float) -> None:
        entry = self._entries.get(stream_id)
        if entry is not None and entry.ended_at is None:
            entry.ended_at = now

    def expire(self, now: float) -> list[str]:
        """Forget streams whose retention has passed; returns their ids."""
        gone = [stream_id for stream_id, entry in self._entries.items()
                if entry.ended_at is not None and now - entry.ended_at >= self.retention]
        for stream_id in gone:
            del self._entries[stream_id]
        return gone
