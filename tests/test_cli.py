"""The command line's process-wide settings."""

from __future__ import annotations

import gc

from sseserver import cli


def test_serving_freezes_startup_objects_and_collects_less_often() -> None:
    before = gc.get_threshold()
    try:
        cli._tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (10_000, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
