"""The owner's writes to Redis: every frame of its streams, on a connection of their
own, RESP-encoded here (:mod:`sseserver.streams.keys`) and written once per loop pass,
never waiting for a reply (Redis answers in order; the replies are read only to count
the refused ones, with hiredis). Part of the Redis store (:mod:`sseserver.streams.redis`),
loaded with it."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any

import hiredis

from sseserver.core.stream_log import StreamLog
from sseserver.streams.keys import encode_command, encode_xadd, events_key, meta_key, xadd_prefix

if TYPE_CHECKING:
    from sseserver.streams.redis import RedisStreams

logger = logging.getLogger("sseserver.streams")

# Seconds to open a connection to Redis (this one and redis-py's): far above a healthy
# connect, short enough that an unreachable Redis is told at once.
CONNECT_TIMEOUT = 2.0
# Frames written but not yet taken by Redis's socket: past this, Redis is too slow to
# keep up and is treated as unreachable (the owner keeps every frame; the resync
# stores them later) rather than let this process's memory grow without bound.
MAX_UNSENT_BYTES = 64 * 1024 * 1024


class MirroredLog(StreamLog):
    """A stream log whose every frame also goes to Redis."""

    __slots__ = ("_appender", "_prefix", "finished_at", "stream_id")

    def __init__(self, max_events: int, max_bytes: int, stream_id: str,
                 appender: Appender) -> None:
        super().__init__(max_events, max_bytes)
        self.stream_id = stream_id
        self._prefix = xadd_prefix(stream_id)
        self._appender = appender
        self.finished_at = 0.0  # wall time of its end: retention runs from there

    def append(self, frame: bytes) -> int:
        event_id = super().append(frame)
        self._appender.frame(self.stream_id, self._prefix, event_id, frame)
        return event_id

    def finish(self) -> None:
        super().finish()
        self.finished_at = time.time()
        self._appender.end(self.stream_id, self.last_id, self.finished_at)


class AppendConnection(asyncio.Protocol):
    """The connection the appender writes on; it reads the replies only to count
    (and log) the refused ones."""

    def __init__(self, appender: Appender) -> None:
        self.appender = appender
        self.transport: asyncio.Transport | None = None
        self.replies = hiredis.Reader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        replies = self.replies
        replies.feed(data)
        reply = replies.gets()
        while reply is not False:
            if isinstance(reply, hiredis.ReplyError):  # a resync's duplicate, or a bug
                self.appender.refused(reply)
            reply = replies.gets()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.appender.disconnected(self, exc)


class Appender:
    """This process's writes to Redis, on one connection of their own: the commands
    of one loop pass go out in one write at the end of the pass, and are never held
    for a reply. While Redis is unreachable nothing is queued: the owner keeps every
    frame in memory anyway, and :meth:`RedisStreams.resync` stores what is missing
    once Redis is back."""

    def __init__(self, store: RedisStreams) -> None:
        self._store = store
        self._pending: list[bytes] = []
        self._connection: AppendConnection | None = None
        self.dropped: set[str] = set()  # streams whose frames could not be stored
        self.writes = 0
        self.refusals = 0

    def __repr__(self) -> str:
        return (f"<Appender connected={self.connected} writes={self.writes} "
                f"refusals={self.refusals}>")

    @property
    def connected(self) -> bool:
        connection = self._connection
        return connection is not None and connection.transport is not None and \
            not connection.transport.is_closing()

    # -- the connection ----------------------------------------------------------------

    async def connect(self, options: dict[str, Any], tls: bool) -> None:
        """Open the connection ``options`` describe (redis-py's reading of the URL)."""
        loop = asyncio.get_running_loop()
        connection = AppendConnection(self)
        if "path" in options:
            connecting = loop.create_unix_connection(lambda: connection, options["path"])
        else:
            connecting = loop.create_connection(
                lambda: connection, options.get("host", "localhost"),
                options.get("port", 6379), ssl=ssl.create_default_context() if tls else None)
        await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
        self._connection = connection
        if options.get("password"):
            self._write(encode_command("AUTH", *filter(None, (
                options.get("username"), options["password"]))))
        if options.get("db"):
            self._write(encode_command("SELECT", options["db"]))

    def refused(self, reply: Exception) -> None:
        self.refusals += 1
        logger.debug("stream store refused a write: %s", reply)

    def disconnected(self, connection: AppendConnection, exc: Exception | None) -> None:
        if connection is self._connection:
            self._connection = None
            self._store.lost(exc or ConnectionResetError("the stream store closed"))

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    # -- the writes --------------------------------------------------------------------

    def frame(self, stream_id: str, prefix: bytes, event_id: int, frame: bytes) -> None:
        if not self._store.up:
            self._drop(stream_id)
            return
        self._queue(encode_xadd(prefix, event_id, frame))
        if event_id == 1:  # the key exists now: bound its life should the owner die
            self._queue(encode_command("EXPIRE", events_key(stream_id),
                                       self._store.lifetime))

    def end(self, stream_id: str, last_id: int, ended: float) -> None:
        if not self._store.up:
            self._drop(stream_id)
            return
        self.queue_end(stream_id, last_id, ended)

    def queue_end(self, stream_id: str, last_id: int, ended: float) -> None:
        """The end entry, and the keys' expiry retention after ``ended`` (wall time):
        stored again by a resync, they still expire when they would have."""
        retention = self._store.retention_left(ended)
        events, meta = events_key(stream_id), meta_key(stream_id)
        self._queue(encode_command("XADD", events, b"%d-0" % (last_id + 1), "end", "1"))
        self._queue(encode_command("HSET", meta, "last", last_id, "ended", round(ended, 3)))
        self._queue(encode_command("EXPIRE", events, retention))
        self._queue(encode_command("EXPIRE", meta, retention))

    def command(self, *args: Any) -> None:
        """Any other write, in order with the frames."""
        if self._store.up:
            self._queue(encode_command(*args))

    def _drop(self, stream_id: str) -> None:
        if not self.dropped:  # once per outage: the resync says how many streams
            logger.warning("stream %s (and any other running here): frames not stored "
                           "while the stream store is unreachable; this server's readers "
                           "get them, readers elsewhere once it is back", stream_id)
        self.dropped.add(stream_id)

    def _queue(self, command: bytes) -> None:
        pending = self._pending
        pending.append(command)
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        commands, self._pending = self._pending, []
        self._write(b"".join(commands))

    def _write(self, data: bytes) -> None:
        connection = self._connection
        transport = connection.transport if connection is not None else None
        if transport is None or transport.is_closing():
            return  # connection_lost has said so
        self.writes += 1
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            logger.warning("stream store too slow: %d bytes unsent", MAX_UNSENT_BYTES)
            transport.abort()
