"""The stream log, sans-IO: an append-only list of encoded frames, bounded.

Frame ``n`` (from 1) is the frame whose SSE ``id`` is ``n``: each frame is encoded
once, and the same bytes object goes to every subscriber, live or replaying. The log
never drops a frame; a stream that would pass its bounds ends instead (the caller
appends an error frame and the end frame, which are allowed past the bound so that
every reader sees a proper ending).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right


class StreamLog:
    __slots__ = ("_ends", "_frames", "bytes", "finished", "max_bytes", "max_events")

    def __init__(self, max_events: int = 100_000, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._frames: list[bytes] = []
        # where each frame ends, in bytes from the log's start: a replay slice is found
        # by bisection, not by walking its frames (8 bytes a frame, no int objects)
        self._ends = array("q")
        self.bytes = 0
        self.finished = False

    def __repr__(self) -> str:
        return (f"<StreamLog events={len(self._frames)} bytes={self.bytes} "
                f"finished={self.finished}>")

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def last_id(self) -> int:
        return len(self._frames)

    def has_room(self, frame: bytes) -> bool:
        return len(self._frames) < self.max_events and self.bytes + len(frame) <= self.max_bytes

    def append(self, frame: bytes) -> int:
        """Add one frame; returns its id. Raises ValueError once the log is finished."""
        if self.finished:
            raise ValueError("the stream log is finished")
        self._frames.append(frame)
        self.bytes += len(frame)
        self._ends.append(self.bytes)
        return len(self._frames)

    def finish(self) -> None:
        self.finished = True

    def window(self, start: int, max_bytes: int) -> list[bytes]:
        """Frames after id ``start``, as many as fit in ``max_bytes`` (at least one).

        O(log n): a reader far behind on a long log costs no more than one close to it.
        """
        ends = self._ends
        if start >= len(ends):
            return []
        limit = (ends[start - 1] if start > 0 else 0) + max_bytes
        end = max(start + 1, bisect_right(ends, limit, start))
        return self._frames[start:end]

    def bytes_after(self, last_id: int) -> int:
        """The size of every frame with an id greater than ``last_id``."""
        return self.bytes - (self._ends[last_id - 1] if last_id > 0 else 0)

    def since(self, last_id: int) -> list[bytes]:
        """Every frame with an id greater than ``last_id`` (all of them for 0)."""
        return self._frames[max(0, last_id):]


def parse_last_event_id(value: str | None) -> int:
    """A ``Last-Event-ID`` as a log position: 0 when absent, empty or not ours.

    Raises ValueError for a value that cannot be an id of ours (so the caller can
    answer 400 instead of replaying from a wrong place).
    """
    if value is None or value.strip() == "":
        return 0
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValueError(f"Last-Event-ID must be a non-negative integer, got {value[:40]!r}")
    return int(text)
