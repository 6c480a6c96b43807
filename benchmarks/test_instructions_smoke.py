"""The instruction-count benchmark, once with a few streams, so it cannot rot."""

from __future__ import annotations

import shutil

import pytest

from benchmarks.instructions import count


@pytest.mark.skipif(shutil.which("callgrind_control") is None, reason="needs valgrind")
@pytest.mark.timeout(300)  # Python starts slowly under valgrind
def test_counts_the_instructions_of_the_streams_alone() -> None:
    few = count("sseserver", streams=2, tokens=2, rate=0)
    more = count("sseserver", streams=6, tokens=2, rate=0)
    # the warm-up is not counted, and more streams cost more (startup would swamp both)
    assert 0 < few < more < 6 * few
