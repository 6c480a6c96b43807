"""The stop decision: which signal drains, which forces, which changes nothing."""

from __future__ import annotations

import signal

import pytest

from sseserver.stopping import (
    FORCING_SIGNALS,
    WORKER_FORCING_SIGNALS,
    StopStage,
    next_stage,
)

RUNNING, DRAINING, FORCED = StopStage.RUNNING, StopStage.DRAINING, StopStage.FORCED
INT, TERM = signal.SIGINT, signal.SIGTERM


@pytest.mark.parametrize(("forcing", "signals", "stage"), [
    (FORCING_SIGNALS, [TERM], DRAINING),
    (FORCING_SIGNALS, [INT], DRAINING),
    (FORCING_SIGNALS, [INT, INT], FORCED),
    (FORCING_SIGNALS, [TERM, INT], FORCED),
    (FORCING_SIGNALS, [TERM, TERM], DRAINING),  # as uvicorn: only Ctrl-C forces
    (FORCING_SIGNALS, [INT, INT, TERM, INT], FORCED),
    (WORKER_FORCING_SIGNALS, [TERM], DRAINING),
    (WORKER_FORCING_SIGNALS, [TERM, TERM], FORCED),  # the parent's second SIGTERM
])
def test_the_first_signal_drains_and_a_forcing_one_stops_at_once(
        forcing: frozenset[int], signals: list[int], stage: StopStage) -> None:
    now = RUNNING
    for signum in signals:
        now = next_stage(now, signum, forcing)
    assert now is stage
