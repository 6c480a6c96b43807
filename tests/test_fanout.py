"""Subscribers of a stream log on a real loop with recording connections: replay in
bounded slices per loop turn, live frames at once, nothing held after a reader leaves."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

from sseserver.aio.flow import FlowControl
from sseserver.core.stream_log import StreamLog
from sseserver.fanout import (
    REPLAY_BYTES_PER_TURN,
    REPLAY_SLICE_BYTES,
    LogOutput,
    Subscriber,
    replay_queue,
)
from tests.conftest import run_async

FRAME = b"id: 1\ndata: {\"content\":\"tok12345 \"}\n\n"  # 37 bytes, like a token's


class RecordingWriter:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self, last: bytes = b"") -> None:
        self.closed = True


class RecordingConnection:
    """What a subscriber uses of its connection: the stream, flow control, on_lost."""

    def __init__(self) -> None:
        self.flow = FlowControl()
        self.on_lost: Callable[[], None] | None = None
        self.writer = RecordingWriter()

    def start_stream(self, status: int, headers: list[tuple[str, str]]) -> RecordingWriter:
        return self.writer

    def lose(self) -> None:
        callback, self.on_lost = self.on_lost, None
        if callback is not None:
            callback()


run = run_async  # each test's steps on a fresh loop, bounded in time


def output_with(frames: int) -> LogOutput:
    output = LogOutput(StreamLog(max_events=frames + 10, max_bytes=1 << 30), False,
                       lambda: 0.0)
    output.open("s", "text/event-stream", b"retry: 1000\n")
    output.write([FRAME] * frames)
    return output


def subscribe(output: LogOutput) -> tuple[Subscriber, RecordingConnection]:
    conn = RecordingConnection()
    return output.subscribe(conn, 0, []), conn  # type: ignore[arg-type]


def replayed(conn: RecordingConnection) -> int:
    return sum(len(w) for w in conn.writer.writes[1:])  # after the preamble


def test_replay_goes_out_in_slices_within_a_budget_per_turn() -> None:
    async def scenario() -> None:
        output = output_with(60_000)  # 2.2 MB each
        conns = [subscribe(output)[1] for _ in range(300)]
        assert all(c.writer.writes == [b"retry: 1000\n"] for c in conns), "nothing yet"
        queue = replay_queue(asyncio.get_running_loop())
        before = 0
        for _turn in range(20):
            await asyncio.sleep(0)
            total = sum(replayed(c) for c in conns)
            assert total - before <= REPLAY_BYTES_PER_TURN + REPLAY_SLICE_BYTES
            assert all(len(w) <= REPLAY_SLICE_BYTES for c in conns for w in c.writer.writes)
            before = total
        # one turn per loop pass, never a second one scheduled beside it (they doubled)
        assert 18 <= queue.turns <= 21, queue
        assert before >= 18 * (REPLAY_BYTES_PER_TURN - REPLAY_SLICE_BYTES)
        # round robin: every reader has had its turns, none ran ahead
        counts = [len(c.writer.writes) for c in conns]
        assert max(counts) - min(counts) <= 1

    run(scenario)


def test_a_caught_up_reader_gets_live_frames_at_once_and_the_end() -> None:
    async def scenario() -> None:
        output = output_with(3)
        _subscriber, conn = subscribe(output)
        assert replayed(conn) == 3 * len(FRAME)  # one slice: sent at once
        output.write([FRAME])
        assert conn.writer.writes[-1] == FRAME
        output.finish([b"end"])
        assert conn.writer.writes[-1] == b"end" and conn.writer.closed
        assert not output.subscribers

    run(scenario)


def test_a_paused_reader_waits_and_resumes_through_the_queue() -> None:
    async def scenario() -> None:
        output = output_with(10_000)
        _subscriber, conn = subscribe(output)
        conn.flow.pause()
        for _ in range(5):
            await asyncio.sleep(0)
        assert replayed(conn) == 0
        conn.flow.resume()
        for _ in range(40):
            await asyncio.sleep(0)
        assert replayed(conn) == 10_000 * len(FRAME)

    run(scenario)


def _reachable(root: object, limit: int = 10_000) -> list[object]:
    seen, todo = {id(root)}, [root]
    found = []
    while todo and len(found) < limit:
        for ref in gc.get_referents(todo.pop()):
            if id(ref) not in seen and not isinstance(ref, type):
                seen.add(id(ref))
                found.append(ref)
                todo.append(ref)
    return found


def test_a_reader_lost_mid_replay_is_not_held_by_its_connection() -> None:
    """The connection held the reader through its flow callbacks, the reader the
    connection: a cycle per reader that left while paused, for the collector."""
    async def scenario() -> None:
        output = output_with(10_000)
        subscriber, conn = subscribe(output)
        await asyncio.sleep(0)
        conn.flow.pause()
        conn.lose()
        assert subscriber not in output.subscribers
        assert not any(ref is subscriber for ref in _reachable(conn))

    run(scenario)
