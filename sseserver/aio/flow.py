"""Backpressure as a small object with idempotent pause and resume.

The side that notices pressure (a transport's write buffer) calls :meth:`pause` and
:meth:`resume` as often as it likes; the producer registers callables and hears about
each change of state exactly once.
"""

from __future__ import annotations

from collections.abc import Callable


class FlowControl:
    __slots__ = ("_on_pause", "_on_resume", "paused", "pauses")

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0  # how often pressure was applied, for observability
        self._on_pause: Callable[[], None] | None = None
        self._on_resume: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<FlowControl paused={self.paused} pauses={self.pauses}>"

    def attach(self, on_pause: Callable[[], None], on_resume: Callable[[], None]) -> None:
        """Register the producer; if pressure is already on, it is paused at once."""
        self._on_pause = on_pause
        self._on_resume = on_resume
        if self.paused:
            on_pause()

    def detach(self) -> None:
        self._on_pause = self._on_resume = None

    def pause(self) -> None:
        if self.paused:
            return
        self.paused = True
        self.pauses += 1
        if self._on_pause is not None:
            self._on_pause()

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        if self._on_resume is not None:
            self._on_resume()
