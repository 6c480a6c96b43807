"""The memory store alone: finding, reading, cancelling, the detached-idle cancel and
expiry, on a loop whose clock moves only when the test moves it (no socket, no
sleep). The relay, its output and the client connection are small stand-ins that
record what the store asked of them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sseserver.config import StreamSettings
from sseserver.core.stream_log import StreamLog
from sseserver.errors import RequestError
from sseserver.relay import RelayState
from sseserver.streams.local import SWEEP_MAX, LocalStreams
from sseserver.streams.store import Resumable

RETENTION = 8.0
IDLE_LIMIT = 20.0
SWEEP = max(0.05, min(SWEEP_MAX, RETENTION / 4))  # as the store computes it


class ManualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only when a test moves it."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def time(self) -> float:
        return self.now


@dataclass
class StandInRelay:
    id: str
    started: float = 0.0
    state: RelayState = RelayState.COMMITTED
    cancelled: list[str] = field(default_factory=list)

    def cancel(self, message: str = "") -> None:
        self.cancelled.append(message)
        self.state = RelayState.ENDED


@dataclass
class StandInOutput:
    log: StreamLog = field(default_factory=StreamLog)
    alone_since: float | None = None
    subscribed: list[tuple[Any, int]] = field(default_factory=list)

    def subscribe(self, conn: Any, after: int, headers: list[tuple[str, str]]) -> None:
        self.subscribed.append((conn, after))


@dataclass
class StandInConnection:
    answers: list[tuple[int, Any]] = field(default_factory=list)

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answers.append((status, body))

    def respond_json(self, status: int, payload: object,
                     headers: list[tuple[str, str]] | None = None) -> None:
        self.answers.append((status, payload))


@pytest.fixture
def loop() -> Iterator[ManualClockLoop]:
    loop = ManualClockLoop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


def advance(loop: ManualClockLoop, seconds: float) -> None:
    """Move the clock, then let every timer now due run."""
    loop.now += seconds

    async def turns() -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    loop.run_until_complete(turns())


def keep(loop: ManualClockLoop, store: LocalStreams, stream_id: str,
         chat_id: str | None = None, started: float = 0.0
         ) -> tuple[StandInRelay, StandInOutput]:
    relay, output = StandInRelay(stream_id, started), StandInOutput()

    async def add() -> None:  # the store schedules its sweeper on the running loop
        store.add(Resumable(relay, output, "/v1/streams/" + stream_id, [], chat_id),
                  None)  # type: ignore[arg-type]

    loop.run_until_complete(add())
    return relay, output


def new_store() -> LocalStreams:
    return LocalStreams(StreamSettings(retention=RETENTION,
                                       detached_idle_timeout=IDLE_LIMIT))


def finish(loop: ManualClockLoop, store: LocalStreams, relay: StandInRelay,
           output: StandInOutput, frames: int) -> None:
    for number in range(frames):
        output.log.append(b"data: %d\n\n" % number)
    output.log.finish()
    relay.state = RelayState.ENDED

    async def ended() -> None:
        store.ended(relay.id)

    loop.run_until_complete(ended())


def test_a_kept_stream_is_found_and_an_unknown_one_is_404(loop: ManualClockLoop) -> None:
    store = new_store()
    relay, _ = keep(loop, store, "s1")
    assert store.get("s1") is not None and store.get("s1").relay is relay  # type: ignore[union-attr]
    with pytest.raises(RequestError) as refused:
        store.subscribe("nope", StandInConnection(), 0)
    assert (refused.value.status, refused.value.error_type) == (404, "not_found_error")
    with pytest.raises(RequestError):
        store.cancel("nope", StandInConnection())


def test_a_reader_starts_after_its_id_and_a_finished_stream_read_to_its_end_is_204(
        loop: ManualClockLoop) -> None:
    store = new_store()
    relay, output = keep(loop, store, "s1")
    finish(loop, store, relay, output, frames=5)
    reader = StandInConnection()
    store.subscribe("s1", reader, 2)
    store.subscribe("s1", reader, 99)  # past the end: nothing left
    assert output.subscribed == [(reader, 2)]
    assert reader.answers == [(204, b"")]


def test_cancel_says_whether_the_generation_was_running(loop: ManualClockLoop) -> None:
    store = new_store()
    relay, _ = keep(loop, store, "s1")
    first, second = StandInConnection(), StandInConnection()
    store.cancel("s1", first)
    store.cancel("s1", second)
    assert first.answers == [(200, {"id": "s1", "status": "cancelled"})]
    assert second.answers == [(200, {"id": "s1", "status": "ended"})]
    assert relay.cancelled[0] == "the stream was cancelled by a client"


def test_a_finished_stream_is_forgotten_once_its_retention_has_passed(
        loop: ManualClockLoop) -> None:
    store = new_store()
    relay, output = keep(loop, store, "s1")
    advance(loop, 3.0)
    finish(loop, store, relay, output, frames=2)
    advance(loop, RETENTION - SWEEP)  # not yet: the retention counts from the end
    assert store.get("s1") is not None
    advance(loop, 2 * SWEEP)  # past it, and a sweep later
    assert store.get("s1") is None
    with pytest.raises(RequestError):
        store.subscribe("s1", StandInConnection(), 0)


def test_a_running_stream_is_kept_however_long_it_runs(loop: ManualClockLoop) -> None:
    store = new_store()
    keep(loop, store, "s1")
    for _ in range(10):
        advance(loop, RETENTION)
    assert store.get("s1") is not None


def test_a_generation_nobody_reads_is_cancelled_at_the_idle_limit(
        loop: ManualClockLoop) -> None:
    store = new_store()
    alone, alone_output = keep(loop, store, "alone")
    read, read_output = keep(loop, store, "read")
    alone_output.alone_since = loop.now
    read_output.alone_since = None  # a reader is attached
    advance(loop, IDLE_LIMIT - SWEEP)
    assert alone.cancelled == []
    advance(loop, 2 * SWEEP)
    assert alone.cancelled == ["no reader for too long"]
    assert read.cancelled == []


def test_the_sweeper_stops_when_no_stream_is_left(loop: ManualClockLoop) -> None:
    store = new_store()
    relay, output = keep(loop, store, "s1")
    finish(loop, store, relay, output, frames=1)
    advance(loop, RETENTION + 2 * SWEEP)
    assert len(store) == 0
    advance(loop, SWEEP)
    assert store._sweeper is None  # nothing left to sweep: no timer kept armed


def test_a_chats_resume_reads_its_latest_running_turn_or_is_204(
        loop: ManualClockLoop) -> None:
    store = new_store()
    _, older = keep(loop, store, "t1", chat_id="chat", started=1.0)
    _, newer = keep(loop, store, "t2", chat_id="chat", started=2.0)
    reader, nobody = StandInConnection(), StandInConnection()
    store.subscribe_chat("chat", reader)
    store.subscribe_chat("other", nobody)
    assert newer.subscribed == [(reader, 0)] and older.subscribed == []
    assert nobody.answers == [(204, b"")]
