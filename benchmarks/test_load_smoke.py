"""The load benchmark's client, once against a real server, so it cannot rot."""

from __future__ import annotations

import asyncio

from benchmarks.load import CHAT_PATH, RunResult, drive, median_run, table
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


def test_load_client_counts_the_chat_completions_endpoint_too() -> None:
    with Stack() as stack:
        results = asyncio.run(drive(stack.port, streams=3, tokens=5, rate=0, stamp=True,
                                    path=CHAT_PATH))
    assert all(r.done and not r.error and r.tokens == 5 for r in results)
    assert all(len(r.latencies) == 5 for r in results)


def test_repeated_runs_report_the_median_one_and_every_error() -> None:
    runs = [{"events_per_cpu_s": value, "errors": errors, "contender": "sseserver"}
            for value, errors in ((300, 0), (100, 2), (200, 0))]
    chosen = median_run(runs)
    assert chosen["events_per_cpu_s"] == 200
    assert chosen["events_per_cpu_s_runs"] == [300, 100, 200]
    assert chosen["errors"] == 2  # an error in any run shows
    assert median_run(runs[:1]) == runs[0]
    assert median_run(runs[:2])["events_per_cpu_s"] == 100  # the lower middle
