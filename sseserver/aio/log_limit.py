"""Log lines a client can cause, held to a rate.

A line per refused request is a way to flood the log (and the disk behind it): each
kind of such line goes out at most once per interval, and the next one says how many
were held back meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """One kind of log line, at most once per ``interval`` seconds."""

    __slots__ = ("_clock", "_held", "_interval", "_level", "_logger", "_next")

    def __init__(self, logger: logging.Logger, level: int, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._held = 0

    def __repr__(self) -> str:
        return f"<RateLimitedLog {self._logger.name} every {self._interval}s held={self._held}>"

    def __call__(self, message: str, *args: object) -> None:
        if not self._logger.isEnabledFor(self._level):
            return
        now = self._clock()
        if now < self._next:
            self._held += 1
            return
        self._next = now + self._interval
        held, self._held = self._held, 0
        if held:
            message += " (and %d more since the last such line)"
            args = (*args, held)
        self._logger.log(self._level, message, *args)
