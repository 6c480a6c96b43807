"""A provider written in the test: a loopback server that answers each request with
chosen bytes at chosen times, for the misbehaviour a real fake cannot be made to show
(a broken status line, a head trickled byte by byte, a flood of comments).

    with RawUpstream([head(), 0.05, chunk(b"data: ...\\n\\n"), LAST_CHUNK]) as upstream:
        ... a provider with base_url upstream.url ...

A reply is a list of steps, run in order: bytes are written (each write its own TCP
segment, so a pause after it makes it a read of its own), a number is a pause in
seconds, a :class:`Flood` writes one block again and again. After the last step the
connection is closed. Request n gets reply n; the last reply answers the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

LAST_CHUNK = b"0\r\n\r\n"


@dataclass(frozen=True)
class Flood:
    """Write ``block`` as fast as the peer reads, for at most ``seconds``."""

    block: bytes
    seconds: float


Step = bytes | float | Flood


# Each reply ends the connection, and says so: a client that kept it for the next
# request would race the close.
CLOSE = "Connection: close"


def head(status: str = "200 OK", content_type: str | None = "text/event-stream",
         *fields: str) -> bytes:
    """A chunked response head."""
    lines = [f"HTTP/1.1 {status}", "Transfer-Encoding: chunked", CLOSE, *fields]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def whole(status: str, content_type: str, body: bytes, *fields: str) -> bytes:
    """A complete response with a Content-Length body."""
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", CLOSE, *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawUpstream:
    """Runs on its own loop in its own thread, so it answers while a test blocks."""

    def __init__(self, *replies: Sequence[Step]) -> None:
        self.replies: list[Sequence[Step]] = list(replies)
        self.requests = 0
        self.bodies: list[bytes] = []  # each request's body, in order
        self.bytes_written = 0
        self.seconds_flooded = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", 0))
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

        self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def answer(self, *replies: Sequence[Step]) -> None:
        """Answer from now on with these replies, counting requests from zero."""
        self.replies = list(replies)
        self.requests = 0
        self.bytes_written = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def _call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError,
                                     asyncio.CancelledError):  # cancelled: the test is over
                await self._answer(reader, writer)
                writer.close()  # one reply per connection; what was written is sent
                await writer.wait_closed()
        finally:
            if not writer.transport.is_closing():
                writer.transport.abort()
            self._handlers.discard(task)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        request_head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in request_head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        self.bodies.append(await reader.readexactly(length))
        reply = self.replies[min(self.requests, len(self.replies) - 1)]
        self.requests += 1
        for step in reply:
            if isinstance(step, Flood):
                await self._flood(writer, step)
            elif isinstance(step, bytes):
                writer.write(step)
                self.bytes_written += len(step)
                await writer.drain()
            else:
                await asyncio.sleep(step)

    async def _flood(self, writer: asyncio.StreamWriter, flood: Flood) -> None:
        started = time.monotonic()
        try:
            while time.monotonic() - started < flood.seconds:
                writer.write(flood.block)
                self.bytes_written += len(flood.block)
                await writer.drain()
        finally:
            self.seconds_flooded = time.monotonic() - started


# -- the two wire formats, as chunks of a chunked body ---------------------------------


@dataclass(frozen=True)
class Wire:
    """How a provider of one wire format says each thing, each a chunk of its own."""

    kind: str  # "openai" or "anthropic"
    start: bytes  # what comes before the first token
    done: bytes  # the regular end, the last chunk included

    def token(self, text: str) -> bytes:
        if self.kind == "openai":
            return chunk(_data({"choices": [{"index": 0, "delta": {"content": text}}]}))
        return chunk(_event("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}}))

    def error(self, error_type: str, message: str) -> bytes:
        """The provider's own mid-stream error event."""
        error = {"type": error_type, "message": message}
        if self.kind == "openai":
            return chunk(_data({"error": error}))
        return chunk(_event("error", {"type": "error", "error": error}))

    def bad_index(self, index: str = "x") -> bytes:
        """A tool call whose index is a string: JSON of the wrong type."""
        if self.kind == "openai":
            return chunk(_data({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": index, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}}]}))
        return chunk(_event("content_block_start", {
            "type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}))

    def empty(self) -> bytes:
        """An event that carries no text: OpenRouter's empty deltas, Anthropic's ping."""
        if self.kind == "openai":
            return chunk(_data({"choices": [{"index": 0, "delta": {"content": ""}}]}))
        return chunk(_event("ping", {"type": "ping"}))


def _data(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(name: str, payload: object) -> bytes:
    return b"event: " + name.encode() + b"\n" + _data(payload)


OPENAI = Wire(
    "openai",
    start=chunk(_data({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})),
    done=chunk(_data({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    + chunk(b"data: [DONE]\n\n") + LAST_CHUNK)
ANTHROPIC = Wire(
    "anthropic",
    start=chunk(_event("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "usage": {"input_tokens": 3, "output_tokens": 1}}}))
    + chunk(_event("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})),
    done=chunk(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    + chunk(_event("message_delta", {"type": "message_delta", "delta": {
        "stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}))
    + chunk(_event("message_stop", {"type": "message_stop"})) + LAST_CHUNK)
WIRES = [OPENAI, ANTHROPIC]
