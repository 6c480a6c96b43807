"""The held-streams and soak benchmarks, once each at a tiny size, so they cannot rot."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.held import log_alone, measure
from benchmarks.soak import Counts, one_stream, request
from tests.e2e.stack import Stack


def test_held_streams_are_measured(capsys: pytest.CaptureFixture[str]) -> None:
    assert 0 < log_alone(tokens=3, logs=20) < 2000
    asyncio.run(measure(streams=10, tokens=2, top=3))
    out = capsys.readouterr().out
    assert "10 streams ended" in out and "bytes per held stream" in out


def test_the_soak_client_counts_events_of_both_kinds() -> None:
    counts = Counts()
    with Stack() as stack:
        for resumable in (False, True):
            asyncio.run(one_stream(stack.port, request(3, 0, resumable), counts))
    assert counts.streams == 2 and counts.errors == 0
    assert counts.events == 2 * 6  # metadata, 3 tokens, usage, [DONE]
