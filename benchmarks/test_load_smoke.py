"""The load benchmark's client, once against a real server, so it cannot rot."""

from __future__ import annotations

import asyncio

from benchmarks.load import RunResult, drive, table
from tests.e2e.stack import Stack


def test_load_client_counts_every_frame_and_stamp() -> None:
    with Stack() as stack:
        results = asyncio.run(drive(stack.port, streams=5, tokens=7, rate=0, stamp=True))
    run = RunResult("sseserver", 5, 7, wall=1.0, server_cpu=0.5, rss_idle=0, rss_active=0,
                    results=results)
    summary = run.summary()
    assert summary["errors"] == 0 and summary["events"] == 35
    assert all(len(r.latencies) == 7 for r in results)
    assert 0 < summary["latency_p50_ms"] < 1000
    assert "sseserver" in table([summary])
