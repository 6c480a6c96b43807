"""The stream log, sans-IO: an append-only list of encoded frames, bounded.

Frame ``n`` (from 1) is the frame whose SSE ``id`` is ``n``: each frame is encoded
once, and the same bytes object goes to every subscriber, live or replaying. The log
never drops a frame; a stream that would pass its bounds ends instead (the caller
appends an error frame and the end frame, which are allowed past the bound so that
every reader sees a proper ending).

A finished log is compacted: its frames become one bytes object and an index of where
each ends, so that a stream held for resuming (minutes, thousands of them) costs two
objects instead of one per event, none of them for the collector to walk, and the
small blocks its frames took while the stream ran are given back at once instead of
pinning allocator pages for the whole retention. Every method answers as before: a
replay slices the frames it sends out of the one object.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right

# The index of a compacted log: 4 bytes an offset while the log is under 4 GiB (its
# bound, streams.max_bytes, is far below), else 8.
_SMALL_INDEX, _LARGE_INDEX = "I", "q"
_SMALL_INDEX_LIMIT = 2**32 - 1
# What a finished log keeps of its list of frames: one empty list for all of them
# (never appended to: append refuses a finished log).
_NO_FRAMES: list[bytes] = []


class StreamLog:
    __slots__ = ("_compact", "_ends", "_frames", "bytes", "finished", "max_bytes",
                 "max_events")

    def __init__(self, max_events: int = 100_000, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._frames: list[bytes] = []  # emptied once finished: the frames are _compact's
        self._compact = b""  # every frame of a finished log, end to end
        # where each frame ends, in bytes from the log's start: a replay slice is found
        # by bisection, not by walking its frames (8 bytes a frame, no int objects)
        self._ends = array(_LARGE_INDEX)
        self.bytes = 0
        self.finished = False

    def __repr__(self) -> str:
        return (f"<StreamLog events={len(self._ends)} bytes={self.bytes} "
                f"finished={self.finished}>")

    def __len__(self) -> int:
        return len(self._ends)

    @property
    def last_id(self) -> int:
        return len(self._ends)

    def has_room(self, frame: bytes) -> bool:
        return len(self._ends) < self.max_events and self.bytes + len(frame) <= self.max_bytes

    def append(self, frame: bytes) -> int:
        """Add one frame; returns its id. Raises ValueError once the log is finished."""
        if self.finished:
            raise ValueError("the stream log is finished")
        self._frames.append(frame)
        self.bytes += len(frame)
        self._ends.append(self.bytes)
        return len(self._ends)

    def finish(self) -> None:
        """End the log (no frame is appended after) and compact it."""
        if self.finished:
            return
        self.finished = True
        self._compact = b"".join(self._frames)
        self._frames = _NO_FRAMES
        # a new index of the exact size (a grown array keeps room to grow), in the
        # narrowest type that holds it
        typecode = _SMALL_INDEX if self.bytes <= _SMALL_INDEX_LIMIT else _LARGE_INDEX
        self._ends = array(typecode, list(self._ends))

    def window(self, start: int, max_bytes: int) -> list[bytes]:
        """Frames after id ``start``, as many as fit in ``max_bytes`` (at least one).

        O(log n): a reader far behind on a long log costs no more than one close to it.
        """
        ends = self._ends
        if start >= len(ends):
            return []
        limit = (ends[start - 1] if start > 0 else 0) + max_bytes
        end = max(start + 1, bisect_right(ends, limit, start))
        return self._slice(start, end)

    def window_bytes(self, start: int, max_bytes: int) -> tuple[int, bytes]:
        """:meth:`window` as the number of frames and their bytes end to end: what a
        reader sends. A live frame alone is the very object appended; a finished log's
        slice is cut in one piece, however many frames it holds."""
        ends = self._ends
        if start >= len(ends):
            return 0, b""
        begin = ends[start - 1] if start > 0 else 0
        end = max(start + 1, bisect_right(ends, begin + max_bytes, start))
        if self.finished:
            return end - start, self._compact[begin:ends[end - 1]]
        if end - start == 1:
            return 1, self._frames[start]
        return end - start, b"".join(self._frames[start:end])

    def bytes_after(self, last_id: int) -> int:
        """The size of every frame with an id greater than ``last_id``."""
        return self.bytes - (self._ends[last_id - 1] if last_id > 0 else 0)

    def since(self, last_id: int) -> list[bytes]:
        """Every frame with an id greater than ``last_id`` (all of them for 0)."""
        return self._slice(max(0, last_id), len(self._ends))

    def _slice(self, start: int, end: int) -> list[bytes]:
        """Frames ``start`` to ``end`` (0-based, end excluded), from the list while
        the log runs, cut from the compacted bytes once it is finished."""
        if not self.finished:
            return self._frames[start:end]
        if start >= end:
            return []
        compact, ends = self._compact, self._ends
        begin = ends[start - 1] if start > 0 else 0
        frames = []
        for index in range(start, end):
            stop = ends[index]
            frames.append(compact[begin:stop])
            begin = stop
        return frames


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
