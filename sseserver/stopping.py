"""How signals stop the server: the first drains, a forcing one during the drain ends it.

As uvicorn does, a second Ctrl-C (SIGINT) stops at once; a second SIGTERM does not (an
orchestrator that means "now" sends SIGKILL). With ``--workers`` a Ctrl-C reaches the
whole process group: the workers ignore SIGINT and obey their parent, which passes the
first signal on as SIGTERM and a forcing one as a second SIGTERM, so a worker's forcing
signal is SIGTERM.
"""

from __future__ import annotations

import enum
import signal


class StopStage(enum.Enum):
    RUNNING = "running"
    DRAINING = "draining"
    FORCED = "forced"


FORCING_SIGNALS = frozenset({signal.SIGINT})
WORKER_FORCING_SIGNALS = frozenset({signal.SIGTERM})


def next_stage(stage: StopStage, signum: int, forcing: frozenset[int]) -> StopStage:
    """The stage after ``signum`` arrives (the same stage: the signal changes nothing)."""
    if stage is StopStage.RUNNING:
        return StopStage.DRAINING
    if stage is StopStage.DRAINING and signum in forcing:
        return StopStage.FORCED
    return stage
