"""A log line a client can cause, held to a rate, on a virtual clock."""

from __future__ import annotations

import logging

import pytest

from sseserver.aio.log_limit import RateLimitedLog


def test_one_line_per_interval_and_the_next_counts_what_was_held(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = RateLimitedLog(logging.getLogger("test.limit"), logging.WARNING, 10.0,
                         clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.limit"):
        for second in range(25):  # three lines a second for 25 s
            now[0] = 100.0 + second
            for _ in range(3):
                log("refused %s", "x")
    assert [r.getMessage() for r in caplog.records] == [
        "refused x", "refused x (and 29 more since the last such line)",
        "refused x (and 29 more since the last such line)"]
    assert repr(log) == "<RateLimitedLog test.limit every 10.0s held=14>"


def test_a_disabled_level_costs_no_clock_read() -> None:
    reads: list[int] = []
    logger = logging.getLogger("test.limit.quiet")
    logger.setLevel(logging.ERROR)
    log = RateLimitedLog(logger, logging.INFO, 10.0, clock=lambda: reads.append(1) or 0.0)
    log("never %s", "shown")
    assert reads == []
