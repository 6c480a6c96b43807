"""The shared stream store: resumable streams in Redis, served by any process.

The process that runs a generation (its owner) keeps the stream in memory as the
embedded store does, and its own readers are served from there (no round trip per
event); every frame also goes to Redis, the same bytes, so that any other process
serves the stream to a reader that asks it. Layout, one hash tag per stream so that
a Redis Cluster keeps a stream's keys on one shard:

- ``sse:{ID}:e``: a Redis Stream, one entry per frame; the frame with SSE id ``n``
  is the entry ``n-0`` (``Last-Event-ID`` is an entry id, no scan), its bytes in the
  field ``f``; an entry with the field ``end`` follows the last frame;
- ``sse:{ID}:m``: a hash of what a reader elsewhere needs (content type, preamble,
  headers, heartbeat, the owner, the frames that end a stream whose owner is lost);
- ``sse:node:NODE``: the owner's lease, renewed every second; a reader elsewhere
  that finds it gone for a whole lease ends the stream with ``owner_lost``;
- ``sse:cancel:NODE``: the channel a ``DELETE`` on any process sends the owner.

Both stream keys expire ``streams.retention`` after the end (and
``max_stream_duration`` + retention after the start, should the owner die).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from sseserver.config import StreamSettings
from sseserver.core.stream_log import StreamLog
from sseserver.errors import RequestError
from sseserver.events import ErrorEvent
from sseserver.fanout import NumberedLogOutput, RemoteReader, with_event_id
from sseserver.streams.local import LocalStreams, cancel_local, not_found, subscribe_local
from sseserver.streams.store import Resumable

if TYPE_CHECKING:
    from sseserver.formats.base import Formatter

logger = logging.getLogger("sseserver.streams")

# The owner's lease: renewed every LEASE_RENEW s, lapsing LEASE s after the last
# renewal. Three renewals per lease ride out a loop stalled for two seconds (a GC
# pause, a burst of replay) without a false owner_lost; a dead owner is noticed
# within LEASE + FOLLOW_BLOCK (4 s).
LEASE = 3.0
LEASE_RENEW = 1.0
# A reader elsewhere waits at most this long in XREAD BLOCK before it looks at the
# owner's lease and sends a heartbeat if one is due (ms, as XREAD takes it).
FOLLOW_BLOCK_MS = 1000
# Entries per XREAD: a reader catching up takes 64 frames (a few KiB of tokens) per
# round trip, then lets its connection's write buffer say whether to go on.
FOLLOW_COUNT = 64
# Reconnecting to Redis: from 0.1 s, doubled, at most 5 s apart, so a restart is
# noticed within seconds and an outage costs one attempt per 5 s.
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
# What a new resumable stream is told while Redis is unreachable: the reconnect
# backoff's ceiling, so the next try likely finds Redis back.
RETRY_AFTER = 5
# A reader elsewhere that meets a Redis error retries for this long, then closes its
# response (its client resumes later, as after any cut): longer than a restart takes.
FOLLOW_OUTAGE = 10.0
# Seconds Redis may take to answer (a command, not a blocked XREAD): far above any
# healthy round trip, short enough that a stalled Redis is noticed.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
OWNER_LOST = ErrorEvent(type="owner_lost", retryable=True, message=(
    "the server generating this stream stopped before the end; start it again"))

_ID_LINE = re.compile(rb"(?m)^id:[^\n]*\n")


def events_key(stream_id: str) -> str:
    return f"sse:{{{stream_id}}}:e"


def meta_key(stream_id: str) -> str:
    return f"sse:{{{stream_id}}}:m"


def lease_key(node: str) -> str:
    return f"sse:node:{node}"


def cancel_channel(node: str) -> str:
    return f"sse:cancel:{node}"


class MirroredLog(StreamLog):
    """A stream log whose every frame also goes to Redis (through the node's
    :class:`Appender`, pipelined per loop pass)."""

    __slots__ = ("_appender", "stream_id")

    def __init__(self, max_events: int, max_bytes: int, stream_id: str,
                 appender: Appender) -> None:
        super().__init__(max_events, max_bytes)
        self.stream_id = stream_id
        self._appender = appender

    def append(self, frame: bytes) -> int:
        event_id = super().append(frame)
        self._appender.frame(self.stream_id, event_id, frame)
        return event_id

    def finish(self) -> None:
        super().finish()
        self._appender.end(self.stream_id, self.last_id)


class Appender:
    """Every write of this process to Redis, pipelined: the commands of one loop pass
    go out together in the next pass. One pipeline at a time, so a stream's entries
    arrive in order; what a pass produces while one is in flight goes out as soon as
    its reply is in. While Redis is unreachable nothing is queued: the owner keeps
    every frame in memory anyway, and :meth:`RedisStreams.resync` stores what is
    missing once Redis is back."""

    def __init__(self, store: RedisStreams) -> None:
        self._store = store
        self._pending: list[tuple[Any, ...]] = []
        self._busy = False  # a pipeline is in flight, or its send is scheduled
        self.dropped: set[str] = set()  # streams whose frames could not be stored
        self.pipelines = 0

    def __repr__(self) -> str:
        return f"<Appender pending={len(self._pending)} pipelines={self.pipelines}>"

    def frame(self, stream_id: str, event_id: int, frame: bytes) -> None:
        if not self._store.up:
            self._drop(stream_id)
            return
        key = events_key(stream_id)
        self._queue(("XADD", key, b"%d-0" % event_id, "f", frame))
        if event_id == 1:  # the key exists now: bound its life should the owner die
            self._queue(("EXPIRE", key, self._store.lifetime))

    def end(self, stream_id: str, last_id: int) -> None:
        if not self._store.up:
            self._drop(stream_id)
            return
        self.queue_end(stream_id, last_id)

    def queue_end(self, stream_id: str, last_id: int) -> None:
        retention = max(1, round(self._store.settings.retention))
        events, meta = events_key(stream_id), meta_key(stream_id)
        self._queue(("XADD", events, b"%d-0" % (last_id + 1), "end", b"1"))
        self._queue(("HSET", meta, "last", last_id))
        self._queue(("EXPIRE", events, retention))
        self._queue(("EXPIRE", meta, retention))

    def command(self, *args: Any) -> None:
        """Any other write, in order with the frames."""
        if self._store.up:
            self._queue(args)

    def _drop(self, stream_id: str) -> None:
        if stream_id not in self.dropped:
            self.dropped.add(stream_id)
            logger.warning("stream %s: the stream store is unreachable; its frames are "
                           "served to this server's readers only until it is back",
                           stream_id)

    def _queue(self, command: tuple[Any, ...]) -> None:
        self._pending.append(command)
        if not self._busy:
            self._busy = True
            asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        commands, self._pending = self._pending, []
        if not commands:
            self._busy = False
            return
        self.pipelines += 1
        task = asyncio.get_running_loop().create_task(self._execute(commands))
        task.add_done_callback(self._sent)

    async def _execute(self, commands: list[tuple[Any, ...]]) -> None:
        async with self._store.redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            replies = await pipe.execute(raise_on_error=False)
        failed = [reply for reply in replies if isinstance(reply, Exception)]
        if failed:  # a resync's duplicate entry, or a bug: never the client's business
            logger.debug("stream store: %d of %d writes refused, first: %s",
                         len(failed), len(commands), failed[0])

    def _sent(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self._store.lost(error)
        self._send()  # what came in meanwhile (nothing while Redis is down)


class RedisStreams(LocalStreams):
    """Streams kept in Redis, served by every process that shares it."""

    shared = True

    def __init__(self, settings: StreamSettings, node: str | None = None) -> None:
        super().__init__(settings)
        self.node = node or secrets.token_hex(8)
        self.redis: Redis = Redis.from_url(
            settings.store, retry=Retry(NoBackoff(), 0), socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT)
        self.appender = Appender(self)
        self.up = False
        # keys of a stream whose owner dies live this long at most (s)
        self.lifetime = round(settings.max_stream_duration + settings.retention)
        self._tasks: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._read_elsewhere: set[str] = set()
        self._metas: dict[str, tuple[Any, ...]] = {}  # of the streams in the registry
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # started by the first stream
        self.start()

    def __repr__(self) -> str:
        return f"<RedisStreams node={self.node} up={self.up} {self.registry!r}>"

    # -- the owner's side ------------------------------------------------------------

    def start(self) -> None:
        """Connect (and keep connecting) to Redis; needs the running loop."""
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._keep_connected())

    def check_available(self) -> None:
        self.start()
        if not self.up:
            raise RequestError("the stream store is unreachable; retry shortly",
                               status=503, error_type="unavailable",
                               headers=[("retry-after", str(RETRY_AFTER))])

    def new_log(self, stream_id: str) -> StreamLog:
        settings = self.settings
        return MirroredLog(settings.max_events, settings.max_bytes, stream_id,
                           self.appender)

    def add(self, resumable: Resumable, formatter: Formatter) -> None:
        super().add(resumable, formatter)
        stream_id = resumable.relay.id
        meta = self._metas[stream_id] = self._meta(resumable, formatter)
        self._store_meta(stream_id, meta)

    def _meta(self, resumable: Resumable, formatter: Formatter) -> tuple[Any, ...]:
        """The HSET arguments of a stream's meta hash."""
        error, end, numbered = lost_frames(formatter)
        numbered = numbered or isinstance(resumable.output, NumberedLogOutput)
        return ("owner", self.node, "ct", formatter.content_type, "pre", formatter.preamble,
                "hdr", orjson.dumps(resumable.headers), "hb", formatter.heartbeat,
                "lost", error, "lostend", end, "ids", int(numbered),
                "created", round(time.time(), 3), "chat", resumable.chat_id or "")

    def _store_meta(self, stream_id: str, meta: tuple[Any, ...]) -> None:
        self.appender.command("HSET", meta_key(stream_id), *meta)
        self.appender.command("EXPIRE", meta_key(stream_id), self.lifetime)

    def forget(self, stream_ids: list[str]) -> None:
        for stream_id in stream_ids:
            self._metas.pop(stream_id, None)

    def read_elsewhere(self, resumable: Resumable) -> bool:
        return resumable.relay.id in self._read_elsewhere

    async def close(self) -> None:
        await super().close()
        tasks = [*self._tasks, *([self._keeper] if self._keeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._keeper = None
        self.up = False
        await self.redis.aclose()

    def lost(self, error: BaseException) -> None:
        """A write failed: Redis is unreachable until the keeper reconnects."""
        if self.up:
            logger.warning("stream store unreachable (%s): new resumable streams answer "
                           "503; live ones go on for this server's readers",
                           type(error).__name__)
        self.up = False

    async def _keep_connected(self) -> None:
        delay = BACKOFF_MIN
        while True:
            try:
                await self._serve_connection()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.lost(exc)
            except Exception:  # a bug: log it, and go on trying
                logger.exception("stream store: unexpected failure")
                self.lost(RuntimeError())
            await asyncio.sleep(delay)
            delay = BACKOFF_MIN if self.up else min(BACKOFF_MAX, delay * 2)

    async def _serve_connection(self) -> None:
        """Connect, take the lease, store what is missing, then renew the lease and
        take cancels until the connection fails."""
        redis = self.redis
        await redis.set(lease_key(self.node), 1, px=int(LEASE * 1000))
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(cancel_channel(self.node))
            await self.resync()
            self.up = True
            logger.info("stream store connected (node %s)", self.node)
            renewed = time.monotonic()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=LEASE_RENEW)
                if message is not None:
                    self._cancelled_elsewhere(message["data"])
                if time.monotonic() - renewed >= LEASE_RENEW:
                    await self._renew()
                    renewed = time.monotonic()

    async def _renew(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(lease_key(self.node), 1, px=int(LEASE * 1000))
            alone = [r.relay.id for r in self.registry.values()
                     if r.output.alone_since is not None and r.output.log.finished is False]
            for stream_id in alone:
                pipe.exists(reading_key(stream_id))
            replies = await pipe.execute()
        self._read_elsewhere = {sid for sid, n in zip(alone, replies[1:], strict=True) if n}

    def _cancelled_elsewhere(self, data: bytes) -> None:
        resumable = self.get(data.decode("ascii", "replace"))
        if resumable is not None:
            cancel_local(resumable)

    async def resync(self) -> None:
        """Store what Redis lacks of this process's streams (after an outage, or a
        Redis restart that lost them): meta, frames after its last entry, the end."""
        streams = self.registry.values()
        if not streams:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for resumable in streams:
                pipe.xrevrange(events_key(resumable.relay.id), count=1)
            tops = await pipe.execute()
        self.up = True  # from here on (no await until queued) appends go in order
        for resumable, top in zip(streams, tops, strict=True):
            self._restore(resumable, int(top[0][0].split(b"-")[0]) if top else 0)
        if self.appender.dropped:
            logger.info("stream store back: stored the missing frames of %d streams",
                        len(self.appender.dropped))
            self.appender.dropped.clear()

    def _restore(self, resumable: Resumable, top: int) -> None:
        stream_id, log = resumable.relay.id, resumable.output.log
        appender = self.appender
        self._store_meta(stream_id, self._metas[stream_id])
        frames = log.since(min(top, log.last_id))
        for offset, frame in enumerate(frames, start=min(top, log.last_id) + 1):
            appender.frame(stream_id, offset, frame)
        if log.finished and top <= log.last_id:
            appender.queue_end(stream_id, log.last_id)

    # -- any process's side ------------------------------------------------------------

    def subscribe(self, stream_id: str, conn: Any, after: int) -> None:
        resumable = self.get(stream_id)
        if resumable is not None:
            subscribe_local(resumable, conn, after)
            return
        self.check_available()
        self._spawn(self._follow(stream_id, conn, after))

    def cancel(self, stream_id: str, conn: Any) -> None:
        resumable = self.get(stream_id)
        if resumable is not None:
            conn.respond_json(200, {"id": stream_id, "status": cancel_local(resumable)})
            return
        self.check_available()
        self._spawn(self._cancel_elsewhere(stream_id, conn))

    def _spawn(self, step: Any) -> None:
        task = asyncio.get_running_loop().create_task(step)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_elsewhere(self, stream_id: str, conn: Any) -> None:
        try:
            owner, last = await self.redis.hmget(meta_key(stream_id), ["owner", "last"])
            if owner is not None and last is None:
                await self.redis.publish(cancel_channel(owner.decode()), stream_id)
        except RedisError as exc:
            self.lost(exc)
            respond_error(conn, 503, "the stream store is unreachable; retry shortly",
                          [("retry-after", str(RETRY_AFTER))])
            return
        if owner is None:
            respond_error(conn, 404, str(not_found(stream_id)))
            return
        conn.respond_json(200, {"id": stream_id,
                                "status": "cancelled" if last is None else "ended"})

    async def _follow(self, stream_id: str, conn: Any, after: int) -> None:
        """A reader of a stream generated elsewhere: the frames after ``after`` from
        Redis, then new ones as they come, until the end entry or a lost owner."""
        try:
            meta = await self.redis.hgetall(meta_key(stream_id))
        except RedisError:
            respond_error(conn, 503, "the stream store is unreachable; retry shortly",
                          [("retry-after", str(RETRY_AFTER))])
            return
        if not meta:
            respond_error(conn, 404, str(not_found(stream_id)))
            return
        if b"last" in meta and after >= int(meta[b"last"]):
            conn.respond(204, [], b"")  # nothing left: an EventSource stops reconnecting
            return
        reader = RemoteReader(conn)
        reader.start(stream_id, meta[b"ct"].decode(), orjson.loads(meta[b"hdr"]),
                     meta[b"pre"])
        try:
            await Follower(self, stream_id, meta, reader, after).run()
        finally:
            reader.close()


class Follower:
    """The loop of one reader elsewhere: XREAD BLOCK after its cursor, write, repeat;
    paused while its client's buffer is full; ended by the end entry, by a lost owner,
    or by Redis unreachable for longer than FOLLOW_OUTAGE."""

    def __init__(self, store: RedisStreams, stream_id: str, meta: dict[bytes, bytes],
                 reader: RemoteReader, after: int) -> None:
        self.store = store
        self.stream_id = stream_id
        self.meta = meta
        self.reader = reader
        self.cursor = after
        self.owner_missing_since: float | None = None
        self.failing_since: float | None = None
        self.loop = asyncio.get_running_loop()

    async def run(self) -> None:
        reader, key = self.reader, events_key(self.stream_id)
        while not reader.gone:
            await reader.writable()
            if reader.gone:
                return
            try:
                reply = await self._read(key)
            except RedisError:
                if self._outage_too_long():
                    return
                await asyncio.sleep(BACKOFF_MIN)
                continue
            self.failing_since = None
            if reply and self._write(reply[0][1]):
                return
            if not reply and await self._owner_lost():
                self._end_lost()
                return

    async def _read(self, key: str) -> Any:
        redis = self.store.redis
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(reading_key(self.stream_id), 1, px=int(LEASE * 1000))
            pipe.xread({key: b"%d-0" % self.cursor}, count=FOLLOW_COUNT,
                       block=FOLLOW_BLOCK_MS)
            replies = await pipe.execute()
        return replies[1]

    def _write(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> bool:
        """Send the entries' frames; True once the end entry is read."""
        frames = [fields[b"f"] for _, fields in entries if b"f" in fields]
        self.reader.write(b"".join(frames))
        self.cursor = int(entries[-1][0].split(b"-")[0])
        return b"end" in entries[-1][1]

    async def _owner_lost(self) -> bool:
        """No entry for a whole block: a heartbeat if due, and a look at the lease."""
        if self.loop.time() - self.reader.last_write >= self.store.settings.heartbeat_interval:
            self.reader.write(self.meta[b"hb"])
        alive = await self.store.redis.exists(lease_key(self.meta[b"owner"].decode()))
        if alive:
            self.owner_missing_since = None
            return False
        now = self.loop.time()
        if self.owner_missing_since is None:
            self.owner_missing_since = now
        return now - self.owner_missing_since >= LEASE

    def _end_lost(self) -> None:
        frames = [self.meta[b"lost"], self.meta[b"lostend"]]
        if self.meta.get(b"ids") == b"1":
            frames = [with_event_id(frame, self.cursor + n)
                      for n, frame in enumerate(frames, start=1)]
        self.reader.write(b"".join(frames))

    def _outage_too_long(self) -> bool:
        now = self.loop.time()
        if self.failing_since is None:
            self.failing_since = now
        return now - self.failing_since >= FOLLOW_OUTAGE


def reading_key(stream_id: str) -> str:
    """Set by readers elsewhere while they follow: the owner does not cancel a stream
    as unread while it exists."""
    return f"sse:{{{stream_id}}}:r"


def lost_frames(formatter: Formatter) -> tuple[bytes, bytes, bool]:
    """The error and end frames that end a stream whose owner is lost, without ids
    (the reader numbers them after the last frame it sent), and whether the format
    numbers its frames: made by a copy of the stream's formatter as it was before its
    first frame."""
    fresh = copy.deepcopy(formatter)
    error, end = fresh.event(OWNER_LOST), fresh.end()
    numbered = _ID_LINE.search(end) is not None
    return _ID_LINE.sub(b"", error), _ID_LINE.sub(b"", end), numbered


def respond_error(conn: Any, status: int, message: str,
                  headers: list[tuple[str, str]] | None = None) -> None:
    error_type = {404: "not_found_error", 503: "unavailable"}.get(status, "error")
    conn.respond_json(status, {"error": {"type": error_type, "message": message}}, headers)
