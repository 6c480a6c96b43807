"""A stream's heartbeats: a comment frame whenever it has been silent for an interval.

A check every half interval sees whether an event went out since the one before; two
quiet checks in a row mean a heartbeat is due. No silence lasts longer than the
interval, and an event costs no clock reading: the stream only counts what it sends.

    heartbeat = Heartbeat(wheel, 15.0, stream)  # stream.events, stream.on_heartbeat_due()
    heartbeat.start()
    heartbeat.stop()
"""

from __future__ import annotations

from typing import Protocol

from sseserver.aio.wheel import Deadline, TimerWheel


class Beating(Protocol):
    """The stream a heartbeat serves."""

    @property
    def events(self) -> int:
        """Frames sent so far: a change means the stream was not silent."""
        ...

    def on_heartbeat_due(self) -> None:
        """The stream was silent for an interval: send a heartbeat."""
        ...


class Heartbeat:
    # Slots: every open stream holds one for its whole life.
    __slots__ = ("_deadline", "_events_seen", "_interval", "_quiet_checks", "_stream",
                 "_wheel")

    def __init__(self, wheel: TimerWheel, interval: float, stream: Beating) -> None:
        self._wheel = wheel
        self._interval = interval  # 0: no heartbeats
        self._stream: Beating | None = stream  # None once stopped: no cycle outlives it
        self._deadline: Deadline | None = None
        self._events_seen = 0  # the stream's events at the last check
        self._quiet_checks = 0  # checks since the last write

    def __repr__(self) -> str:
        state = "stopped" if self._deadline is None else f"quiet={self._quiet_checks}"
        return f"<Heartbeat every {self._interval:g} s {state}>"

    def start(self) -> None:
        if self._interval > 0 and self._stream is not None:
            self._deadline = self._wheel.call_later(self._interval / 2, self._check)

    def stop(self) -> None:
        """For good: a stopped heartbeat lets go of its stream."""
        self._stream = None
        deadline, self._deadline = self._deadline, None
        if deadline is not None:
            deadline.cancel()

    def _check(self) -> None:
        self._deadline = None
        stream = self._stream
        if stream is None:
            return
        events = stream.events
        if events != self._events_seen:  # written since the last check
            self._events_seen = events
            self._quiet_checks = 1  # the write may be up to half an interval old
        else:
            self._quiet_checks += 1
        if self._quiet_checks >= 2:
            self._quiet_checks = 0
            stream.on_heartbeat_due()
        self.start()
