"""The relay's driver alone: a scripted upstream (heads and byte chunks), a recording
output and a loop on a virtual clock. No socket is opened, and no test sleeps: a
30-second Retry-After passes in no time."""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sseserver.aio.upstream import State
from sseserver.config import ProviderSettings
from sseserver.core.http_client import ResponseHead
from sseserver.core.pooling import Disposal, disposal
from sseserver.errors import UpstreamConnectError, UpstreamError
from sseserver.formats.sse import SSEFormatter
from sseserver.providers.openai import OpenAIProvider
from sseserver.relay import (
    TRANSITIONS,
    Relay,
    RelayPolicy,
    RelayState,
    StreamStatus,
    Target,
)
from sseserver.schema import GenerationRequest

# -- a loop whose clock moves only when it would otherwise wait --------------------------


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready and timeout:
            self._loop.now += timeout  # nothing to do until the next timer: jump to it
        elif not ready and timeout is None:
            raise RuntimeError("the loop would wait forever: the test's stream is stuck")
        return ready


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 1000.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self.now


@pytest.fixture
def loop() -> Iterator[VirtualClockLoop]:
    virtual = VirtualClockLoop()
    yield virtual
    virtual.close()


# -- a scripted upstream ---------------------------------------------------------------


@dataclass
class Script:
    """One attempt's answer: a head after ``ttfb`` seconds (or ``fail`` instead), then
    ``chunks`` of body ``interval`` seconds apart, then the end (or ``cut``)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {
        "content-type": "text/event-stream"})
    chunks: list[bytes] = field(default_factory=list)
    ttfb: float = 0.1
    interval: float = 0.05
    fail: UpstreamError | None = None  # instead of a head
    cut: bool = False  # the body breaks off instead of ending
    with_head: int = 0  # chunks that came in the head's read (given at stream())


class FakeUpstream:
    """What the relay uses of an UpstreamConnection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, script: Script) -> None:
        self.loop = loop
        self.script = script
        self.state = State.AWAITING_HEAD
        self.closed = False
        self.paused = 0
        self._listener: Any = None
        self.response_head: ResponseHead | None = None
        self._sink: Any = None
        self._chunks = list(script.chunks)
        loop.call_later(script.ttfb, self._answer)

    def _answer(self) -> None:
        if self.closed:
            return
        if self.script.fail is not None:
            self.state = State.FAILED
            self._listener.on_head_error(self.script.fail)
            return
        self.state = State.BODY
        self.response_head = ResponseHead(self.script.status, self.script.headers)
        self._listener.on_head(self.response_head)

    def await_head(self, listener: Any) -> None:
        self._listener = listener

    def stream(self, sink: Any) -> None:
        first = self._sink is None
        self._sink = sink
        if first:  # as the connection gives what came with the head, at once
            for _ in range(self.script.with_head):
                if self._chunks:
                    sink.on_body(self._chunks.pop(0))
            if self.script.with_head and not self._chunks and not self.script.cut:
                self.state = State.DONE
                sink.on_body_end()
                return
            self.loop.call_later(self.script.interval, self._next)

    def _next(self) -> None:
        if self.closed or self._sink is None:
            return
        if self._chunks:
            self._sink.on_body(self._chunks.pop(0))
            self.loop.call_later(self.script.interval, self._next)
        elif self.script.cut:
            self.state = State.FAILED
            self._sink.on_body_error(UpstreamError("provider closed the connection"))
        else:
            self.state = State.DONE
            self._sink.on_body_end()

    def read_body(self, start: bytes = b"") -> asyncio.Future[bytes]:
        body: asyncio.Future[bytes] = self.loop.create_future()
        body.set_result(start + b"".join(self._chunks))
        self._chunks = []
        self.state = State.DONE
        return body

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakePool:
    """Answers each request with the next script; records what came back to it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, scripts: list[Script | Exception]
                 ) -> None:
        self.loop = loop
        self.scripts = scripts
        self.requests: list[tuple[str, float]] = []
        self.released: list[FakeUpstream] = []
        self.discarded: list[FakeUpstream] = []

    def request_idle(self, url: str, method: str, headers: Any, body: bytes) -> None:
        return None  # every attempt connects: the driver's task path

    async def request(self, url: str, method: str, headers: Any, body: bytes) -> FakeUpstream:
        self.requests.append((url, self.loop.time()))
        script = self.scripts.pop(0)
        if isinstance(script, Exception):
            raise script
        return FakeUpstream(self.loop, script)

    def finish(self, conn: FakeUpstream, complete: bool) -> Disposal:
        """As the pool decides (a scripted response is always keep-alive)."""
        action = disposal(ended=conn.state is State.DONE, in_body=conn.state is State.BODY,
                          keep_alive=True, complete=complete)
        if action is Disposal.DISCARD:
            self.discard(conn)
        else:  # a drain ends in a release: the scripted body has no more to send
            self.release(conn)
        return action

    def release(self, conn: FakeUpstream) -> None:
        self.released.append(conn)

    def discard(self, conn: FakeUpstream) -> None:
        conn.close()
        self.discarded.append(conn)


@dataclass
class RecordingOutput:
    streams_at_once: bool = False
    bytes_sent: int = 0
    opened: bool = False
    body: bytearray = field(default_factory=bytearray)
    heartbeats: list[float] = field(default_factory=list)
    error: tuple[int, list[tuple[str, str]], dict[str, Any]] | None = None
    finished: bool = False
    on_gone: Callable[[], None] | None = None
    on_full: Callable[[], None] | None = None
    clock: Callable[[], float] = time.monotonic

    def bind(self, on_gone: Callable[[], None], on_full: Callable[[], None]) -> None:
        self.on_gone, self.on_full = on_gone, on_full

    def unbind(self) -> None:
        self.on_gone = self.on_full = None

    def open(self, stream_id: str, content_type: str, preamble: bytes) -> None:
        assert not self.opened
        self.opened = True
        self.body += preamble

    def open_with(self, stream_id: str, content_type: str, preamble: bytes,
                  first_read: Callable[[], bool]) -> None:
        self.open(stream_id, content_type, preamble)
        first_read()

    def write(self, frames: list[bytes]) -> None:
        assert self.opened and not self.finished
        self.body += b"".join(frames)

    def write_frame(self, frame: bytes) -> None:
        self.write([frame])

    def heartbeat(self, frame: bytes) -> None:
        self.heartbeats.append(self.clock())

    def finish(self, frames: list[bytes]) -> None:
        self.write(frames)
        self.finished = True

    def respond_error(self, status: int, headers: list[tuple[str, str]],
                      payload: dict[str, Any], upstream_status: int | None = None) -> None:
        assert not self.opened
        self.error = (status, headers, payload)

    def attach_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        pass

    def detach_flow(self) -> None:
        pass


def token(text: str) -> bytes:
    return b'data: {"choices":[{"index":0,"delta":{"content":"%b"}}]}\n\n' % text.encode()


DONE = b"data: [DONE]\n\n"
PROVIDERS = [OpenAIProvider(ProviderSettings(name, "openai", f"http://{name}.test/v1"))
             for name in ("first", "second")]


@dataclass
class Run:
    relay: Relay
    output: RecordingOutput
    pool: FakePool
    ended: list[Relay]


def start(loop: VirtualClockLoop, scripts: list[Script | Exception], targets: int = 1,
          **policy: Any) -> Run:
    output = RecordingOutput(clock=loop.time)
    pool = FakePool(loop, scripts)
    ended: list[Relay] = []

    async def begin() -> Relay:
        relay = Relay(output, GenerationRequest(model="m", messages=()),
                      [Target(provider, "m") for provider in PROVIDERS[:targets]],
                      SSEFormatter(), RelayPolicy(**policy), pool,  # type: ignore[arg-type]
                      on_end=ended.append, stream_id="S1")
        relay.start()
        return relay

    return Run(loop.run_until_complete(begin()), output, pool, ended)


def run_until_ended(loop: VirtualClockLoop, run: Run, limit: float = 600.0) -> None:
    async def wait() -> None:
        deadline = loop.time() + limit
        while not run.ended and loop.time() < deadline:
            await asyncio.sleep(0.01)

    loop.run_until_complete(wait())
    assert run.ended == [run.relay], "the stream did not end"


# -- the tests ---------------------------------------------------------------------------


def test_a_stream_relays_its_tokens_and_gives_its_connection_back(
        loop: VirtualClockLoop) -> None:
    run = start(loop, [Script(chunks=[token("Hel"), token("lo"), DONE])])
    run_until_ended(loop, run)
    body = bytes(run.output.body)
    assert body.startswith(b"retry: 3000\nid: 1\nevent: metadata\n")
    assert b'"content":"Hel"' in body and body.endswith(b"data: [DONE]\n\n")
    assert (run.relay.state, run.relay.status, run.relay.events) == (
        RelayState.ENDED, StreamStatus.OK, 4)
    assert run.relay.first_token_at == pytest.approx(1000.0 + 0.1 + 0.05)
    loop.run_until_complete(asyncio.sleep(0.5))  # [DONE] came: the body's end is drained
    assert len(run.pool.released) == 1 and not run.pool.discarded


def test_a_retry_after_is_waited_for_on_the_virtual_clock(loop: VirtualClockLoop) -> None:
    limited = UpstreamError("slow down", status=429, retry_after=30.0)
    run = start(loop, [Script(fail=limited), Script(chunks=[token("ok"), DONE])])
    began = time.monotonic()
    run_until_ended(loop, run)
    assert time.monotonic() - began < 5.0  # 30 virtual seconds, not real ones
    (_, first), (_, second) = run.pool.requests
    assert second - first == pytest.approx(30.0 + 0.1, abs=0.05)
    assert run.relay.attempts == 2 and run.relay.status is StreamStatus.OK


def test_retries_back_off_then_the_route_falls_back(loop: VirtualClockLoop) -> None:
    refused = [UpstreamConnectError("refused") for _ in range(3)]
    run = start(loop, [*refused, Script(chunks=[token("ok"), DONE])], targets=2,
                max_retries=2, backoff_initial=1.0, backoff_max=8.0)
    run_until_ended(loop, run)
    urls = [url for url, _ in run.pool.requests]
    assert urls == ["http://first.test/v1/chat/completions"] * 3 + [
        "http://second.test/v1/chat/completions"]
    times = [at for _, at in run.pool.requests]
    assert 0.5 <= times[1] - times[0] <= 1.0  # the first backoff: half to all of 1 s
    assert 1.0 <= times[2] - times[1] <= 2.0  # then doubled
    assert times[3] == times[2]  # the next target at once
    assert b'"provider":"second"' in run.output.body


def test_a_route_that_fails_everywhere_answers_one_status(loop: VirtualClockLoop) -> None:
    run = start(loop, [Script(status=400, headers={"content-type": "application/json"},
                              chunks=[b'{"error":{"message":"bad model"}}'])], targets=1)
    run_until_ended(loop, run)
    assert run.output.error is not None
    status, _, payload = run.output.error
    assert status == 400 and "bad model" in payload["error"]["message"]
    assert run.relay.status is StreamStatus.ERROR and not run.output.opened


def test_a_failure_after_the_commit_is_an_error_event_not_a_retry(
        loop: VirtualClockLoop) -> None:
    run = start(loop, [Script(chunks=[token("half")], cut=True), Script()])
    run_until_ended(loop, run)
    body = bytes(run.output.body)
    assert body.index(b'"content":"half"') < body.index(b"event: error") < \
        body.index(b"[DONE]")
    assert len(run.pool.requests) == 1 and run.relay.status is StreamStatus.ERROR
    assert len(run.pool.discarded) == 1  # a broken body's connection is not reused


def test_a_silent_provider_gets_the_client_a_heartbeat_at_the_interval(
        loop: VirtualClockLoop) -> None:
    run = start(loop, [Script(chunks=[token("late"), DONE], ttfb=40.0)],
                heartbeat_interval=15.0)
    run_until_ended(loop, run)
    beats = [at - 1000.0 for at in run.output.heartbeats]
    assert beats == pytest.approx([15.0, 30.0], abs=0.1)
    assert run.output.opened  # the head went out with the first heartbeat


@pytest.mark.parametrize(("stop", "error_type", "status"), [
    (lambda relay: relay.cancel("stop"), "cancelled", StreamStatus.CANCELLED),
    (lambda relay: relay.shutdown("draining"), "shutdown", StreamStatus.ERROR),
    (None, "stream_too_large", StreamStatus.ERROR),  # the output's bound was passed
])
def test_a_stop_mid_stream_is_its_own_error_type(
        loop: VirtualClockLoop, stop: Callable[[Relay], None] | None, error_type: str,
        status: StreamStatus) -> None:
    run = start(loop, [Script(chunks=[token(str(i)) for i in range(100)])])
    loop.run_until_complete(asyncio.sleep(1.0))
    if stop is not None:
        stop(run.relay)
    else:
        assert run.output.on_full is not None
        run.output.on_full()
    assert run.ended == [run.relay] and run.relay.status is status
    assert b'"type":"%b"' % error_type.encode() in run.output.body
    assert run.output.finished and len(run.pool.discarded) == 1


def test_shutdown_before_the_head_is_a_503_with_retry_after(loop: VirtualClockLoop) -> None:
    run = start(loop, [Script(ttfb=60.0)])
    loop.run_until_complete(asyncio.sleep(1.0))
    run.relay.shutdown("draining")
    assert run.output.error is not None
    status, headers, payload = run.output.error
    assert (status, payload["error"]["type"]) == (503, "shutdown")
    assert ("retry-after", "5") in headers


def test_a_client_gone_ends_the_stream_and_closes_the_upstream(
        loop: VirtualClockLoop) -> None:
    run = start(loop, [Script(chunks=[token(str(i)) for i in range(100)])])
    loop.run_until_complete(asyncio.sleep(1.0))
    assert run.output.on_gone is not None
    run.output.on_gone()
    assert run.relay.status is StreamStatus.CANCELLED
    assert run.pool.discarded and run.pool.discarded[0].closed
    assert not run.output.finished  # no one is left to read an ending


def test_a_json_error_behind_an_event_stream_label_is_read_as_the_error_it_is(
        loop: VirtualClockLoop) -> None:
    run = start(loop, [Script(chunks=[b'{"error":{"message":"quota exceeded",'
                                      b'"type":"insufficient_quota"}}'])])
    run_until_ended(loop, run)
    body = bytes(run.output.body)  # the 200 had opened the response
    assert b"event: error" in body and b"quota exceeded" in body
    assert b'{"error"' not in body.split(b"event: error")[0]  # the document is not relayed


def test_the_state_moves_only_as_the_table_allows(loop: VirtualClockLoop) -> None:
    run = start(loop, [Script(chunks=[DONE])])
    run_until_ended(loop, run)
    with pytest.raises(AssertionError, match="no move"):
        run.relay._move(RelayState.OPEN)
    assert TRANSITIONS[RelayState.ENDED] == frozenset()
    reachable = {RelayState.STARTING}
    for state in list(reachable):
        reachable |= TRANSITIONS[state]
    for state in list(reachable):
        reachable |= TRANSITIONS[state]
    assert reachable == set(RelayState)


def _held_by(root: object, shared: tuple[object, ...], limit: int = 2000) -> list[object]:
    """The objects ``root`` holds, directly or not: instances and containers only (no
    class, module or function, which lead to everything), and not through ``shared``
    (what every stream uses, such as the pool)."""
    import gc
    import types

    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    seen: dict[int, object] = {}
    todo = [root]
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, skip) or any(obj is s for s in shared):
            continue
        seen[id(obj)] = obj
        todo.extend(gc.get_referents(obj))
    return list(seen.values())


def test_a_finished_stream_holds_only_what_a_late_reader_asks_of_it(
        loop: VirtualClockLoop) -> None:
    """A finished relay is held for the retention window: not its request (a whole
    conversation), nor the pump with its reader and adapter."""
    from sseserver.core.sse import SSEParser
    from sseserver.providers.openai import OpenAIAdapter
    from sseserver.pump import Pump

    run = start(loop, [Script(chunks=[token("Hel"), token("lo"), DONE])])
    request = run.relay._request
    run_until_ended(loop, run)
    loop.run_until_complete(asyncio.sleep(0.5))  # the body's end drained, the pool told
    run.output.on_gone = run.output.on_full = None
    held = _held_by(run.relay, shared=(run.pool,))
    assert not any(obj is request for obj in held)
    assert not [obj for obj in held if isinstance(obj, Pump | SSEParser | OpenAIAdapter)]
    assert (run.relay.events, run.relay.status, run.relay.state) == (
        4, StreamStatus.OK, RelayState.ENDED)
    assert run.relay.usage is None and run.relay.attempts == 1
