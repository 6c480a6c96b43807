"""A read that carries several events (a fast model, a stream catching up) leaves as
one client write, through the real upstream protocol and chunked decoder."""

from __future__ import annotations

import asyncio

from sseserver.aio.upstream import State, Timeouts, UpstreamConnection
from sseserver.config import ProviderSettings
from sseserver.core.chunked import ChunkedDecoder
from sseserver.formats.sse import SSEFormatter
from sseserver.providers.openai import OpenAIProvider
from sseserver.pump import Pump

BOUND = 1 << 20


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, frames: list[bytes]) -> None:
        self.writes.append(b"".join(frames))

    def write_frame(self, frame: bytes) -> None:
        self.writes.append(frame)


class Driver:
    def on_commit(self) -> dict[str, str]:
        return {"stream_id": "S1"}

    def on_settled(self, result: object) -> None:
        pass

    def on_unreadable(self, exc: Exception) -> None:
        pass


class Transport:
    def write(self, data: bytes) -> None:
        pass

    def is_reading(self) -> bool:
        return True


def chunk(text: str) -> bytes:
    event = b'data: {"choices":[{"index":0,"delta":{"content":"%b"}}]}\n\n' % text.encode()
    return b"%x\r\n%b\r\n" % (len(event), event)


def test_ten_chunks_in_one_read_are_one_write_of_ten_frames() -> None:
    loop = asyncio.new_event_loop()
    try:
        output = Recorder()
        provider = OpenAIProvider(ProviderSettings("p", "openai", "http://x/v1"))
        pump = Pump(SSEFormatter(), output, Driver())
        pump.begin(provider.new_body_reader(BOUND, BOUND), provider.new_adapter())
        pump.commit([])
        upstream = UpstreamConnection(Timeouts(), loop)
        upstream.connection_made(Transport())  # type: ignore[arg-type]
        upstream.state = State.BODY  # as after the response head
        upstream._decoder = ChunkedDecoder()
        upstream.stream(pump)
        output.writes.clear()
        upstream.data_received(b"".join(chunk(str(i)) for i in range(10)))
        assert len(output.writes) == 1
        assert output.writes[0].count(b'data: {"content"') == 10
        assert pump.events == 1 + 10
    finally:
        loop.close()
