"""Resumable streams: a relay writes into a log; any number of readers follow it.

Every frame is encoded once into the :class:`~sseserver.core.stream_log.StreamLog`;
each :class:`Subscriber` sends the same bytes objects from its own position, at its own
pace. A slow subscriber never slows the generation or the other subscribers: while its
connection is above high water it just stops taking from the log, and catches up when
the connection drains (or is evicted by the slow-consumer timeout and resumes later
with ``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from sseserver.aio.http_server import HTTPConnection, StreamWriter
from sseserver.core.stream_log import StreamLog
from sseserver.output import stream_head

# Replay is sent in slices of this size, so a reader catching up on a long stream
# meets its connection's high-water mark (and pauses) instead of buffering it all; a
# quarter of the mark, so a paused reader holds at most 1.25 marks (80 KiB) buffered.
REPLAY_SLICE_BYTES = 16 * 1024
# Replay across all readers of all streams per loop turn: 1,000 readers catching up on
# a 60,000-event log held the loop for seconds when each sent all it could at once.
# Copying 2 MiB into loopback sockets takes 2-4 ms here, so replay adds at most that to
# any other connection's wait per turn, and still moves hundreds of MB/s.
REPLAY_BYTES_PER_TURN = 2 * 1024 * 1024


class LogOutput:
    """The relay's output for a resumable stream: the log and its subscribers."""

    streams_at_once = True

    def __init__(self, log: StreamLog, cancel_when_alone: bool, now: Callable[[], float]
                 ) -> None:
        self.log = log
        self.subscribers: set[Subscriber] = set()
        self.stream_id = ""
        self.content_type = "text/event-stream"
        self.preamble = b""  # each subscriber's response starts with it, before replay
        self._cancel_when_alone = cancel_when_alone
        self._on_gone: Callable[[], None] | None = None
        self._on_full: Callable[[], None] | None = None
        self._now = now
        self.alone_since: float | None = now()
        self.subscribed_ever = 0

    def __repr__(self) -> str:
        return f"<LogOutput {self.stream_id} subscribers={len(self.subscribers)} {self.log!r}>"

    @property
    def bytes_sent(self) -> int:
        return self.log.bytes

    # -- the relay's side ----------------------------------------------------------

    def bind(self, on_gone: Callable[[], None], on_full: Callable[[], None]) -> None:
        self._on_gone = on_gone
        self._on_full = on_full

    def unbind(self) -> None:
        self._on_gone = self._on_full = None

    def open(self, stream_id: str, content_type: str, preamble: bytes) -> None:
        self.stream_id = stream_id
        self.content_type = content_type
        self.preamble = preamble

    def open_with(self, stream_id: str, content_type: str, preamble: bytes,
                  first_read: Callable[[], bool]) -> None:
        self.open(stream_id, content_type, preamble)
        first_read()

    def write(self, frames: list[bytes]) -> None:
        room = True
        for frame in frames:
            room = room and self.log.has_room(frame)
            self.log.append(frame)
        for subscriber in list(self.subscribers):
            subscriber.pump()
        if not room and self._on_full is not None:
            self._on_full()

    def write_frame(self, frame: bytes) -> None:
        self.write([frame])

    def heartbeat(self, frame: bytes) -> None:
        for subscriber in list(self.subscribers):
            subscriber.heartbeat(frame)

    def finish(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.log.append(frame)
        self.log.finish()
        for subscriber in list(self.subscribers):
            subscriber.pump()

    def respond_error(self, status: int, headers: list[tuple[str, str]],
                      payload: dict[str, Any], upstream_status: int | None = None) -> None:
        # never reached: a resumable stream is open from its start, so a failure is an
        # error event in the log, which every reader (and every later resume) sees
        raise AssertionError("a resumable stream has no response of its own")

    def attach_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        pass  # readers catch up from the log: they never pause the generation

    def detach_flow(self) -> None:
        pass

    # -- subscribers -----------------------------------------------------------------

    def subscribe(self, conn: HTTPConnection, after_id: int,
                  extra_headers: list[tuple[str, str]]) -> Subscriber:
        """Start sending this stream to ``conn``: every frame after ``after_id``, then
        live frames until the end."""
        subscriber = Subscriber(self, conn, after_id)
        self.subscribers.add(subscriber)
        self.subscribed_ever += 1
        self.alone_since = None
        subscriber.start(stream_head(self.stream_id, self.content_type, extra_headers))
        return subscriber

    def left(self, subscriber: Subscriber, gone: bool) -> None:
        self.subscribers.discard(subscriber)
        if self.subscribers:
            return
        self.alone_since = self._now()
        if gone and self._cancel_when_alone and not self.log.finished and \
                self._on_gone is not None:
            self._on_gone()


class NumberedLogOutput(LogOutput):
    """A log output for formats whose frames carry no ``id:`` of their own (the
    compatible endpoints' streams): each frame is given its log position as its SSE id
    when it is appended, so that ``Last-Event-ID`` means the same here as on
    ``/v1/streams``. The log, not the formatter, numbers them: it alone knows which
    frames it keeps."""

    def write(self, frames: list[bytes]) -> None:
        super().write(self._numbered(frames))

    def finish(self, frames: list[bytes]) -> None:
        super().finish(self._numbered(frames))

    def _numbered(self, frames: list[bytes]) -> list[bytes]:
        first = self.log.last_id + 1
        return [with_event_id(frame, first + offset) for offset, frame in enumerate(frames)]


def with_event_id(frame: bytes, event_id: int) -> bytes:
    """``frame`` with an ``id:`` field in its last event (a field's place within its
    event does not matter, WHATWG 9.2.6). The last one only: a reader cut inside a
    frame of several events resumes at that frame and may see its first events twice,
    rather than miss the rest. A frame that ends no event (none here) is kept as is."""
    if not frame.endswith(b"\n\n"):
        return frame
    return b"%bid: %d\n\n" % (frame[:-1], event_id)


class ReplayQueue:
    """The readers that are behind their log, served round robin, one slice each, at
    most REPLAY_BYTES_PER_TURN per loop turn, whatever the number of readers."""

    __slots__ = ("_loop", "_scheduled", "_waiting", "turns")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: deque[Subscriber] = deque()
        self._scheduled = False
        self.turns = 0

    def __repr__(self) -> str:
        return f"<ReplayQueue waiting={len(self._waiting)} turns={self.turns}>"

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, subscriber: Subscriber) -> None:
        self._waiting.append(subscriber)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        self.turns += 1
        budget = REPLAY_BYTES_PER_TURN
        waiting = self._waiting
        while waiting and budget > 0:  # a reader sent a slice goes back to the end
            budget -= waiting.popleft().send_slice()
        # one turn scheduled at a time, also when readers were added during this one
        self._scheduled = bool(waiting)
        if waiting:
            self._loop.call_soon(self._turn)


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReplayQueue] = \
    weakref.WeakKeyDictionary()


def replay_queue(loop: asyncio.AbstractEventLoop) -> ReplayQueue:
    """The loop's replay queue, made on first use."""
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = ReplayQueue(loop)
    return queue


class Subscriber:
    """One reader of a stream log, at its own position and pace.

    A reader that is caught up gets each live frame at once. One that is behind (a
    resume, a late subscriber, a connection that drained) waits in the loop's
    :class:`ReplayQueue` and sends one slice per turn, so readers replaying long logs
    take turns with each other and with every other connection.
    """

    __slots__ = ("_conn", "_output", "_paused", "_queue", "_queued", "_writer", "cursor")

    def __init__(self, output: LogOutput, conn: HTTPConnection, after_id: int) -> None:
        self._output = output
        self._conn = conn
        self._queue = replay_queue(asyncio.get_running_loop())
        self.cursor = after_id  # the id of the last frame sent
        self._paused = False
        self._queued = False  # waiting in the replay queue for its next slice
        self._writer: StreamWriter | None = None

    def __repr__(self) -> str:
        return f"<Subscriber cursor={self.cursor} paused={self._paused} queued={self._queued}>"

    def start(self, headers: list[tuple[str, str]]) -> None:
        self._writer = self._conn.start_stream(200, headers)
        self._writer.write(self._output.preamble)
        self._conn.flow.attach(self._pause, self._resume)
        self._conn.on_lost = self._lost
        self.pump()

    def pump(self) -> None:
        """Send what the log has beyond our position: at once if it is one slice (the
        live case), else through the replay queue."""
        if self._writer is None or self._paused or self._queued:
            return
        log = self._output.log
        if log.last_id - self.cursor > 1 and \
                log.bytes_after(self.cursor) > REPLAY_SLICE_BYTES:
            self._queued = True
            self._queue.add(self)
        else:
            self.send_slice()

    def send_slice(self) -> int:
        """Send the next slice; wait in the queue again if more is left. Returns the
        number of bytes sent."""
        self._queued = False
        writer = self._writer
        if writer is None or self._paused:
            return 0
        log = self._output.log
        sent = 0
        if self.cursor < log.last_id:
            count, data = log.window_bytes(self.cursor, REPLAY_SLICE_BYTES)
            self.cursor += count
            sent = len(data)
            writer.write(data)
        if self._writer is None or self._paused:  # the write found the client gone, or full
            return sent
        if self.cursor < log.last_id:
            self._queued = True
            self._queue.add(self)
        elif log.finished:
            self._done(writer)
        return sent

    def _done(self, writer: StreamWriter) -> None:
        self._writer = None
        self._release()
        writer.close()
        self._output.left(self, gone=False)

    def _release(self) -> None:
        """Let go of the connection, and it of us (no cycle left for the collector)."""
        self._conn.flow.detach()
        self._conn.on_lost = None

    def heartbeat(self, frame: bytes) -> None:
        if self._writer is not None and not self._paused:
            self._writer.write(frame)

    def _pause(self) -> None:
        self._paused = True

    def _resume(self) -> None:
        self._paused = False
        self.pump()

    def _lost(self) -> None:
        self._writer = None
        self._release()
        self._output.left(self, gone=True)


class RemoteReader:
    """One reader of a stream generated by another process: the store reads its frames
    (from Redis) and hands them here. The rules of a local reader hold: the
    connection's write buffer pauses the reading (:meth:`writable`), and a client above
    high water past the slow-consumer timeout is disconnected by its connection."""

    __slots__ = ("_conn", "_resumed", "_writer", "gone", "last_write", "on_resume")

    def __init__(self, conn: HTTPConnection) -> None:
        self._conn = conn
        self._writer: StreamWriter | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.gone = False
        self.last_write = 0.0  # loop time of the last write (heartbeats fill silences)
        # told when the client takes more again (the reading waits for no task)
        self.on_resume: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<RemoteReader gone={self.gone} paused={not self._resumed.is_set()}>"

    def start(self, stream_id: str, content_type: str, extra_headers: list[tuple[str, str]],
              preamble: bytes) -> None:
        self._writer = self._conn.start_stream(
            200, stream_head(stream_id, content_type, extra_headers))
        self._conn.flow.attach(self._resumed.clear, self._resume)
        self._conn.on_lost = self._lost
        self.write(preamble)

    def _resume(self) -> None:
        self._resumed.set()
        if self.on_resume is not None:
            self.on_resume()

    def write(self, data: bytes) -> None:
        if self._writer is not None and data:
            self._writer.write(data)
            self.last_write = asyncio.get_running_loop().time()

    @property
    def paused(self) -> bool:
        """The client's buffer is full (or the client is gone): write no more now."""
        return not self._resumed.is_set() or self.gone

    async def writable(self) -> None:
        """Returns once the client takes more (at once unless its buffer is full)."""
        if not self._resumed.is_set():
            await self._resumed.wait()

    def close(self) -> None:
        """The stream is over (or cannot go on here): end the response."""
        writer, self._writer = self._writer, None
        if writer is not None:
            self._release()
            writer.close()
        self.gone = True

    def _release(self) -> None:
        self._conn.flow.detach()
        self._conn.on_lost = None

    def _lost(self) -> None:
        self._writer = None
        self._release()
        self.gone = True
        self._resumed.set()  # a reader waiting for room learns the client is gone
