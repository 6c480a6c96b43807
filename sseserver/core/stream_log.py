"""The stream log, sans-IO: an append-only list of encoded frames, bounded.

Frame ``n`` (from 1) is the frame whose SSE ``id`` is ``n``: each frame is encoded
once, and the same bytes object goes to every subscriber, live or replaying. The log
never drops a frame; a stream that would pass its bounds ends instead (the caller
appends an error frame and the end frame, which are allowed past the bound so that
every reader sees a proper ending).
"""

from __future__ import annotations


class StreamLog:
    __slots__ = ("_frames", "bytes", "finished", "max_bytes", "max_events")

    def __init__(self, max_events: int = 100_000, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._frames: list[bytes] = []
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
        return len(self._frames)

    def finish(self) -> None:
        self.finished = True

    def window(self, start: int, max_bytes: int) -> list[bytes]:
        """Frames after id ``start``, as many as fit in ``max_bytes`` (at least one)."""
        frames = self._frames
        end, size = start, 0
        while end < len(frames) and (end == start or size + len(frames[end]) <= max_bytes):
            size += len(frames[end])
            end += 1
        return frames[start:end]

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
