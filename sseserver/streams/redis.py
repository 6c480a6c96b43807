"""The shared stream store: resumable streams in Redis, served by any process.

The process that runs a generation (its owner) keeps the stream in memory as the
embedded store does, and its own readers are served from there (no round trip per
event); every frame also goes to Redis, the same bytes, so that any other process
serves the stream to a reader that asks it (the layout: :mod:`sseserver.streams.keys`).
Frames go out on one connection of their own, written once per loop pass and never
waiting for a reply (:mod:`sseserver.streams.redis_append`). Commands that need an
answer (reads, the lease, cancels) use redis-py. These two modules alone import the
redis extra's packages.

A stream's keys expire ``streams.retention`` after its end (and
``max_stream_duration`` + retention after its start, should the owner die).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from sseserver.config import StreamSettings
from sseserver.core.stream_log import StreamLog
from sseserver.errors import RequestError
from sseserver.fanout import NumberedLogOutput, RemoteReader
from sseserver.streams.follow import (
    FOLLOW_BLOCK_MS,
    FOLLOW_COUNT,
    Entries,
    FollowHub,
    StoreUnavailable,
)
from sseserver.streams.keys import (
    cancel_channel,
    chat_key,
    entry_number,
    events_key,
    lease_key,
    meta_key,
    reading_key,
    wake_key,
    xadd_prefix,
)
from sseserver.streams.local import LocalStreams, cancel_local, not_found, subscribe_local
from sseserver.streams.lost import lost_frames
from sseserver.streams.redis_append import CONNECT_TIMEOUT, Appender, MirroredLog
from sseserver.streams.store import Resumable

if TYPE_CHECKING:
    from sseserver.formats.base import Formatter

logger = logging.getLogger("sseserver.streams")

# The owner's lease: renewed every LEASE_RENEW s, lapsing LEASE s after the last
# renewal. Three renewals per lease ride out a loop stalled for two seconds (a GC
# pause, a burst of replay) without a false owner_lost; a reader elsewhere notices a
# dead owner within LEASE + two blocks of XREAD (5 s).
LEASE = 3.0
LEASE_RENEW = 1.0
# The owner looks whether its unread streams are read elsewhere every LEASE_RENEW, or
# four times per streams.detached_idle_timeout when that is shorter (so that a stream
# read only elsewhere is known to be read before the timeout cancels it), but no
# more often than every CHECK_MIN s: one round trip, whatever the number of streams.
CHECK_MIN = 0.05
# Reconnecting to Redis: from 0.1 s, doubled, at most 5 s apart, so a restart is
# noticed within seconds and an outage costs one attempt per 5 s.
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
# What a new resumable stream is told while Redis is unreachable: the reconnect
# backoff's ceiling, so the next try likely finds Redis back.
RETRY_AFTER = 5
# Seconds Redis may take to answer a command (a blocked XREAD adds its block): far
# above any healthy round trip, short enough that a stalled Redis is noticed.
SOCKET_TIMEOUT = 5.0
# Connections redis-py may open (the frames have one more of their own): one held by
# the cancel subscription, one by the readers' blocked XREAD, the rest for short
# commands (a reader's first look, a DELETE elsewhere, the lease), which wait for a
# free one rather than open one per client: 10,000 readers here are still 8
# connections to Redis.
MAX_CONNECTIONS = 8
# Wake-up entries kept (only the newest matters; ids only grow).
WAKE_MAXLEN = 8

# Points a chat at its turn's stream, unless a later turn took it already: the chat
# key of a turn that ended lives retention longer (KEYS[1] the chat, ARGV the stream
# and the seconds).
_CHAT_ENDED = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
               "return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0")
_UNREACHABLE = "the stream store is unreachable; retry shortly"


class RedisStreams(LocalStreams):
    """Streams kept in Redis, served by every process that shares it."""

    shared = True
    lease = LEASE

    def __init__(self, settings: StreamSettings, node: str | None = None) -> None:
        super().__init__(settings)
        self.node = node or secrets.token_hex(8)
        self.redis: Redis = Redis(connection_pool=BlockingConnectionPool.from_url(
            settings.store, max_connections=MAX_CONNECTIONS, timeout=SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), 0), socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT))
        self.appender = Appender(self)
        self.up = False
        # keys of a stream whose owner dies live this long at most (s)
        self.lifetime = round(settings.max_stream_duration + settings.retention)
        self._tasks: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._read_elsewhere: set[str] = set()
        self._served = False  # the keeper's connection got as far as serving
        self._metas: dict[str, tuple[Any, ...]] = {}  # of the streams in the registry
        self._hub: FollowHub | None = None
        self.check_interval = max(CHECK_MIN, min(LEASE_RENEW,
                                                 settings.detached_idle_timeout / 4))
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
            raise RequestError(_UNREACHABLE, status=503, error_type="unavailable",
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
                "hdr", encoded_headers(tuple(resumable.headers)), "hb", formatter.heartbeat,
                "lost", error, "lostend", end, "ids", int(numbered),
                "created", round(time.time(), 3), "chat", resumable.chat_id or "")

    def _store_meta(self, stream_id: str, meta: tuple[Any, ...]) -> None:
        self.appender.command("HSET", meta_key(stream_id), *meta)
        self.appender.command("EXPIRE", meta_key(stream_id), self.lifetime)
        resumable = self.get(stream_id)
        if resumable is not None and resumable.chat_id:
            if resumable.output.log.finished:
                self._chat_ended(resumable.chat_id, stream_id, ended_at(resumable))
            else:  # the chat's latest turn: its resume finds it from any process
                self.appender.command("SET", chat_key(resumable.chat_id), stream_id,
                                      "EX", self.lifetime)

    def _chat_ended(self, chat_id: str, stream_id: str, ended: float) -> None:
        self.appender.command("EVAL", _CHAT_ENDED, 1, chat_key(chat_id), stream_id,
                              self.retention_left(ended))

    def retention_left(self, ended: float) -> int:
        """Seconds a stream that ended at ``ended`` (wall time) is still kept; at
        least 1 (EXPIRE 0 deletes at once, while this process still serves it)."""
        return max(1, round(self.settings.retention - (time.time() - ended)))

    def ended(self, stream_id: str) -> None:
        super().ended(stream_id)
        resumable = self.get(stream_id)
        if resumable is not None and resumable.chat_id:
            self._chat_ended(resumable.chat_id, stream_id, ended_at(resumable))

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
        if self._hub is not None:
            await self._hub.close()
        self._keeper = None
        self.up = False
        self.appender.close()
        await self.redis.aclose()

    def lost(self, error: BaseException) -> None:
        """Redis is unreachable until the keeper reconnects."""
        if self.up:
            logger.warning("stream store unreachable (%s): new resumable streams answer "
                           "503; live ones go on for this server's readers",
                           type(error).__name__)
        self.up = False

    async def _keep_connected(self) -> None:
        delay = BACKOFF_MIN
        first = True  # later outages are told by lost(), as the store goes down
        while True:
            self._served = False
            try:
                await self._serve_connection()
            except Exception as exc:  # unreachable, refused, or a bug: try again
                if first and not self.up:
                    logger.warning("stream store unreachable (%s: %s): new resumable "
                                   "streams answer 503 until it is back",
                                   type(exc).__name__, exc)
                self.lost(exc)
            first = False
            self.lost(ConnectionResetError("the stream store closed"))
            self.appender.close()
            delay = BACKOFF_MIN if self._served else min(BACKOFF_MAX, delay * 2)
            await asyncio.sleep(delay)

    async def _serve_connection(self) -> None:
        """Connect, take the lease, store what is missing, then renew the lease and
        take cancels until a connection fails."""
        redis = self.redis
        await redis.set(lease_key(self.node), 1, px=int(LEASE * 1000))
        store = self.settings.store
        await self.appender.connect(parse_url(store), store.startswith("rediss://"))
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(cancel_channel(self.node))
            await self.resync()
            self._served = True
            logger.info("stream store connected (node %s)", self.node)
            renewed = checked = time.monotonic()
            while self.appender.connected:
                message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=self.check_interval)
                if message is not None:
                    self._cancelled_elsewhere(message["data"])
                now = time.monotonic()
                if now - checked >= self.check_interval:
                    renew = now - renewed >= LEASE_RENEW
                    await self._renew(renew)
                    checked = time.monotonic()
                    renewed = checked if renew else renewed

    async def _renew(self, lease: bool = True) -> None:
        """Renew the lease (when ``lease``); learn which of our unread streams are read
        elsewhere."""
        alone = [r.relay.id for r in self.registry.values()
                 if r.output.alone_since is not None and not r.output.log.finished]
        if not alone and not lease:
            self._read_elsewhere = set()
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream_id in alone:
                pipe.exists(reading_key(stream_id))
            if lease:
                pipe.set(lease_key(self.node), 1, px=int(LEASE * 1000))
            replies = await pipe.execute()
        self._read_elsewhere = {s for s, n in zip(alone, replies, strict=False) if n}

    def _cancelled_elsewhere(self, data: bytes) -> None:
        resumable = self.get(data.decode("ascii", "replace"))
        if resumable is not None:
            cancel_local(resumable)

    async def resync(self) -> None:
        """Store what Redis lacks of this process's streams (after an outage, or a
        Redis restart that lost them): meta, frames after its last entry, the end."""
        streams = self.registry.values()
        tops: list[Any] = []
        if streams:
            async with self.redis.pipeline(transaction=False) as pipe:
                for resumable in streams:
                    pipe.xrevrange(events_key(resumable.relay.id), count=1)
                tops = await pipe.execute()
        self.up = True  # from here on (no await until queued) appends go in order
        for resumable, top in zip(streams, tops, strict=True):
            self._restore(resumable, entry_number(top[0][0]) if top else 0)
        dropped = self.appender.dropped
        if dropped:
            gone = sum(1 for stream_id in dropped if self.get(stream_id) is None)
            logger.warning("stream store back: stored the frames it missed of %d streams; "
                           "%d that ended and expired meanwhile were never stored",
                           len(dropped) - gone, gone)
            dropped.clear()

    def _restore(self, resumable: Resumable, top: int) -> None:
        stream_id, log = resumable.relay.id, resumable.output.log
        self._store_meta(stream_id, self._metas[stream_id])
        stored = min(top, log.last_id)
        prefix = xadd_prefix(stream_id)
        for event_id, frame in enumerate(log.since(stored), start=stored + 1):
            self.appender.frame(stream_id, prefix, event_id, frame)
        if log.finished:  # its end again (a duplicate is refused), and its expiry
            self.appender.queue_end(stream_id, log.last_id, ended_at(resumable))

    # -- any process's side ------------------------------------------------------------

    def subscribe(self, stream_id: str, conn: Any, after: int) -> None:
        resumable = self.get(stream_id)
        if resumable is not None:
            subscribe_local(resumable, conn, after)
            return
        self.check_available()
        self._spawn(self._follow(stream_id, conn, after))

    def subscribe_chat(self, chat_id: str, conn: Any) -> None:
        if self.running_turn(chat_id) is not None or not self.up:
            super().subscribe_chat(chat_id, conn)  # Redis down: this process's turns
            return
        self._spawn(self._resume_chat(chat_id, conn))

    async def _resume_chat(self, chat_id: str, conn: Any) -> None:
        try:
            stream_id = await self.redis.get(chat_key(chat_id))
        except (RedisError, OSError):
            stream_id = None  # as when nothing runs: useChat shows the chat as it is
        if stream_id is None:
            conn.respond(204, [], b"")
            return
        await self._follow(stream_id.decode(), conn, 0, running_only=True)

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
        except RedisError:
            respond_error(conn, 503, _UNREACHABLE, [("retry-after", str(RETRY_AFTER))])
            return
        if owner is None:
            respond_error(conn, 404, str(not_found(stream_id)))
            return
        conn.respond_json(200, {"id": stream_id,
                                "status": "cancelled" if last is None else "ended"})

    async def _follow(self, stream_id: str, conn: Any, after: int,
                      running_only: bool = False) -> None:
        """A reader of a stream generated elsewhere; ``running_only``: 204 for one
        that has ended (a chat's resume)."""
        try:
            meta = await self._stream_meta(stream_id)
        except (RedisError, OSError):
            respond_error(conn, 503, _UNREACHABLE, [("retry-after", str(RETRY_AFTER))])
            return
        if not meta:
            respond_error(conn, 404, str(not_found(stream_id)))
            return
        if b"last" in meta and (running_only or after >= int(meta[b"last"])):
            conn.respond(204, [], b"")  # nothing left: an EventSource stops reconnecting
            return
        reader = RemoteReader(conn)
        reader.start(stream_id, meta[b"ct"].decode(), orjson.loads(meta[b"hdr"]),
                     meta[b"pre"])
        try:
            await self.hub().follow(stream_id, meta, reader, after)
        finally:
            reader.close()

    async def _stream_meta(self, stream_id: str) -> dict[bytes, bytes]:
        """A stream's meta hash; asked twice at most: a pooled connection that Redis
        closed (a restart) fails once, and is then opened again."""
        try:
            return await self.redis.hgetall(meta_key(stream_id))  # type: ignore[no-any-return]
        except (RedisError, OSError):
            return await self.redis.hgetall(meta_key(stream_id))  # type: ignore[no-any-return]

    def hub(self) -> FollowHub:
        """This process's readers of streams generated elsewhere (made on first use)."""
        if self._hub is None:
            self._hub = FollowHub(self, self.settings.heartbeat_interval)
        return self._hub

    async def read_many(self, cursors: dict[str, int], wake_cursor: bytes,
                        marks: list[str]) -> tuple[dict[str, Entries], bytes]:
        keys: dict[Any, Any] = {wake_key(self.node): wake_cursor}
        for stream_id, cursor in cursors.items():
            keys[events_key(stream_id)] = b"%d-0" % cursor
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream_id in marks:
                    pipe.set(reading_key(stream_id), 1, px=int(LEASE * 1000))
                pipe.xread(keys, count=FOLLOW_COUNT, block=FOLLOW_BLOCK_MS)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from None
        found: dict[str, Entries] = {}
        wake = wake_key(self.node).encode()
        for key, entries in replies[-1] or []:
            if key == wake:
                wake_cursor = entries[-1][0]
            else:  # sse:{ID}:e
                found[key[5:-3].decode()] = entries
        return found, wake_cursor

    def wake(self) -> None:
        self._spawn(self._wake())

    async def _wake(self) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(wake_key(self.node), {"w": 1}, maxlen=WAKE_MAXLEN)
                pipe.expire(wake_key(self.node), self.lifetime)
                await pipe.execute()
        except (RedisError, OSError):
            pass  # the blocked read returns by itself within a block

    async def still_there(self, streams: list[tuple[str, str]]) -> list[tuple[bool, bool]]:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream_id, owner in streams:
                    pipe.exists(meta_key(stream_id))
                    pipe.exists(lease_key(owner))
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from None
        return [(bool(kept), bool(alive)) for kept, alive in zip(
            replies[::2], replies[1::2], strict=True)]


def ended_at(resumable: Resumable) -> float:
    """The wall time a stream of this process ended (now for one still running)."""
    log = resumable.output.log
    finished = log.finished_at if isinstance(log, MirroredLog) else 0.0
    return finished or time.time()


@functools.lru_cache(maxsize=64)
def encoded_headers(headers: tuple[tuple[str, str], ...]) -> bytes:
    """A format's response headers as JSON, once per format (orjson's bytes of a
    small value hold a 4 KiB buffer: 4 KiB a stream kept in the meta otherwise)."""
    return orjson.dumps(headers)


def respond_error(conn: Any, status: int, message: str,
                  headers: list[tuple[str, str]] | None = None) -> None:
    error_type = {404: "not_found_error", 503: "unavailable"}.get(status, "error")
    conn.respond_json(status, {"error": {"type": error_type, "message": message}}, headers)
