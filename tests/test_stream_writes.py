"""How many writes a stream costs its client: the relay over a real DirectOutput and
HTTPConnection, each write kept apart by a recording transport (a socket would not
show them). The head goes out with the first read's frames, and the last read's
frames with the end: one send each, where there were two."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sseserver.aio.http_server import HTTPConnection
from sseserver.config import LimitsSettings
from sseserver.formats.sse import SSEFormatter
from sseserver.output import DirectOutput
from sseserver.relay import Relay, RelayPolicy, StreamStatus, Target
from sseserver.schema import GenerationRequest
from tests.aio.test_stream_writer import RecordingTransport
from tests.test_relay_driver import DONE, PROVIDERS, FakePool, Script, VirtualClockLoop, token


@pytest.fixture
def loop() -> Iterator[VirtualClockLoop]:
    virtual = VirtualClockLoop()
    yield virtual
    virtual.close()


ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'


def relay_over_socket(loop: VirtualClockLoop, script: Script, http11: bool = True,
                      head_only: bool = False
                      ) -> tuple[Relay, RecordingTransport, list[Relay]]:
    transport = RecordingTransport()
    conn = HTTPConnection(lambda request, c: None, LimitsSettings(header_timeout=0),
                          lambda c, status, message: None, loop)
    conn._transport = transport  # type: ignore[assignment]
    conn._http11, conn._head_only, conn._keep_alive = http11, head_only, False
    ended: list[Relay] = []

    async def begin() -> Relay:
        relay = Relay(DirectOutput(conn, []), GenerationRequest(model="m", messages=()),
                      [Target(PROVIDERS[0], "m")], SSEFormatter(), RelayPolicy(),
                      FakePool(loop, [script]),  # type: ignore[arg-type]
                      on_end=ended.append, stream_id="S1")
        relay.start()
        return relay

    relay = loop.run_until_complete(begin())

    async def until_ended() -> None:
        for _ in range(10_000):
            if ended:
                return
            await asyncio.sleep(0.01)

    loop.run_until_complete(until_ended())
    assert ended == [relay] and relay.status is StreamStatus.OK
    return relay, transport, ended


def events_of(writes: list[bytes]) -> list[bytes]:
    """The SSE events the writes carry, their HTTP head and chunk framing taken off."""
    payload = b""
    for write in writes:
        body = write.split(b"\r\n\r\n", 1)[1] if write.startswith(b"HTTP/1.1") else write
        while body:
            size_line, _, rest = body.partition(b"\r\n")
            size = int(size_line, 16)
            payload += rest[:size]
            body = rest[size + 2:]
    return [event for event in payload.split(b"\n\n") if event]


def test_a_body_whole_in_the_heads_read_is_one_write_head_to_end(
        loop: VirtualClockLoop) -> None:
    chunks = [ROLE + token("Hel") + token("lo") + DONE]
    _, transport, _ = relay_over_socket(loop, Script(chunks=chunks, with_head=1))
    assert len(transport.writes) == 1
    (write,) = transport.writes
    assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b"\r\n0\r\n\r\n")
    assert [e.split(b"\n")[-1] for e in events_of(transport.writes)] == [
        b'data: {"stream_id":"S1","provider":"first","model":"m"}',
        b'data: {"content":"Hel"}', b'data: {"content":"lo"}', b"data: [DONE]"]


def test_the_first_reads_frames_go_with_the_head_and_the_last_reads_with_the_end(
        loop: VirtualClockLoop) -> None:
    chunks = [ROLE + token("a"), token("b"), token("c") + DONE]
    _, transport, _ = relay_over_socket(loop, Script(chunks=chunks, with_head=1))
    head_and_first, middle, last = transport.writes
    assert head_and_first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"content":"a"' in head_and_first
    assert b'"content":"b"' in middle and b"HTTP" not in middle
    assert b'"content":"c"' in last and last.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")


def test_a_head_whose_read_has_no_frame_goes_out_alone_at_once(
        loop: VirtualClockLoop) -> None:
    """The head is the client's sign that the provider answered: it is not held past
    the read it came in, however long the first token takes."""
    chunks = [ROLE, token("a") + DONE]
    script = Script(chunks=chunks, with_head=1, interval=5.0)
    _, transport, _ = relay_over_socket(loop, script)
    head, rest = transport.writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"retry: 3000\n\r\n")
    assert rest.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")


def test_a_body_read_piece_by_piece_keeps_one_write_a_read(
        loop: VirtualClockLoop) -> None:
    chunks = [token("a"), token("b"), token("c"), DONE]
    _, transport, _ = relay_over_socket(loop, Script(chunks=chunks))
    # the head when the provider answered; a write per token; [DONE] with the end
    assert len(transport.writes) == 5
    assert transport.writes[-1] == b"14\r\nid: 5\ndata: [DONE]\n\n\r\n0\r\n\r\n"




def test_an_http10_client_and_a_head_get_the_same_one_write(loop: VirtualClockLoop) -> None:
    """HTTP/1.0 gets the raw body (no chunks) with its head in one write; a HEAD gets
    the head alone, once."""
    chunks = [ROLE + token("a") + token("b") + DONE]
    _, raw, _ = relay_over_socket(loop, Script(chunks=chunks, with_head=1), http11=False)
    (write,) = raw.writes
    head, _, body = write.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding" not in head
    assert body.startswith(b"retry: 3000\nid: 1\nevent: metadata\n")
    assert body.endswith(b'data: {"content":"b"}\n\nid: 4\ndata: [DONE]\n\n')
    _, head_only, _ = relay_over_socket(loop, Script(chunks=chunks, with_head=1),
                                        head_only=True)
    (head_write,) = head_only.writes
    assert head_write.startswith(b"HTTP/1.1 200 OK") and head_write.endswith(b"\r\n\r\n")
