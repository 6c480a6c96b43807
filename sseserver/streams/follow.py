"""The readers of streams that other processes generate: one :class:`FollowHub` per
process waits on all of them at once (one XREAD BLOCK over every followed stream, on
one connection), and hands each stream's new entries to its readers, each at its
client's pace. A reader is ended by its stream's end entry, by the owner's lapsed
lease (``owner_lost``), by the stream's expiry, or by a store out of reach for too
long."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol

from sseserver.fanout import REPLAY_SLICE_BYTES, RemoteReader, with_event_id
from sseserver.streams.keys import entry_number

logger = logging.getLogger("sseserver.streams")

# How long the hub waits for a new entry before it looks at quiet streams' owners'
# leases and sends the heartbeats due (ms, as XREAD BLOCK takes it); a reader joining
# or resuming wakes it at once.
FOLLOW_BLOCK_MS = 1000
# Entries per stream per XREAD: a reader catching up takes 64 frames (a few KiB of
# tokens) per round trip, then lets its connection's write buffer say whether to go on.
FOLLOW_COUNT = 64
# When the store fails, the hub retries this often, for at most FOLLOW_OUTAGE s, then
# closes its readers' responses (their clients resume later, as after any cut): longer
# than a Redis restart takes.
FOLLOW_RETRY = 0.1
FOLLOW_OUTAGE = 10.0
# How often the hub renews the marks that its streams are read here (a mark lasts a
# lease, 3 s): three renewals per mark, as the owner renews its lease.
MARK_INTERVAL = 1.0

Entries = list[tuple[bytes, dict[bytes, bytes]]]


class StoreUnavailable(Exception):
    """The store could not be asked (unreachable, restarting, timed out)."""


class Source(Protocol):
    lease: float  # s an owner's lease lasts after its last renewal

    async def read_many(self, cursors: dict[str, int], wake_cursor: bytes,
                        marks: list[str]) -> tuple[dict[str, Entries], bytes]:
        """Entries after each stream's cursor, waiting up to FOLLOW_BLOCK_MS for the
        first (or a wake-up); the wake-up cursor after it. ``marks``: the streams to
        say (for a lease) are being read here."""
        ...

    async def still_there(self, streams: list[tuple[str, str]]) -> list[tuple[bool, bool]]:
        """Per (stream, owner): whether the stream is still kept, and its owner's
        lease still held."""
        ...

    def wake(self) -> None:
        """Make the hub's blocked read return (the set of streams changed)."""
        ...


class Reader:
    """One client's reading of a stream generated elsewhere."""

    __slots__ = ("cursor", "done", "remote")

    def __init__(self, remote: RemoteReader, after: int) -> None:
        self.remote = remote
        self.cursor = after  # the id of the last frame sent
        self.done = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<Reader cursor={self.cursor} {self.remote!r}>"

    @property
    def active(self) -> bool:
        return not self.remote.paused and not self.done.done()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def write(self, entries: Entries) -> None:
        """Send the entries past its cursor in slices, as a local reader replays,
        stopping when the client's buffer is full (the rest is read again once it
        drains); finished once the end entry is read."""
        remote = self.remote
        batch: list[bytes] = []
        size = 0
        for entry_id, fields in entries:
            frame = fields.get(b"f")
            if frame is None:  # the end entry: every frame before it is in the batch
                remote.write(b"".join(batch))
                self.finish()
                return
            number = entry_number(entry_id)
            if number <= self.cursor:
                continue  # another reader of the stream is behind this one
            batch.append(frame)
            size += len(frame)
            self.cursor = number
            if size >= REPLAY_SLICE_BYTES:
                remote.write(b"".join(batch))
                batch, size = [], 0
                if remote.paused:
                    return
        remote.write(b"".join(batch))


@dataclass(slots=True, eq=False)
class Followed:
    """A stream read here, and its readers."""

    stream_id: str
    meta: dict[bytes, bytes]
    readers: set[Reader] = field(default_factory=set)
    quiet_since: float = 0.0  # loop time of its last entry, or of its last look
    missing_since: float | None = None  # when the owner's lease was first gone
    marked: bool = False  # said to be read here at least once

    def end_lost(self) -> None:
        """Each reader's owner_lost error and end, numbered after its last frame."""
        for reader in self.readers:
            frames = [self.meta[b"lost"], self.meta[b"lostend"]]
            if self.meta.get(b"ids") == b"1":
                frames = [with_event_id(frame, reader.cursor + n)
                          for n, frame in enumerate(frames, start=1)]
            reader.remote.write(b"".join(frames))
            reader.finish()


class FollowHub:
    """Every reader of this process that follows a stream generated elsewhere, served
    by one loop and one blocked read; a paused reader's stream leaves the read until
    it resumes (its client's buffer says when)."""

    def __init__(self, source: Source, heartbeat_interval: float) -> None:
        self.source = source
        self.heartbeat_interval = heartbeat_interval
        self.streams: dict[str, Followed] = {}
        self.reads = 0  # XREADs issued (tests count round trips with it)
        self._wake_cursor = b"0-0"
        self._wake_due = False
        self._marked = -MARK_INTERVAL
        self._failing_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    def __repr__(self) -> str:
        readers = sum(len(s.readers) for s in self.streams.values())
        return f"<FollowHub streams={len(self.streams)} readers={readers} reads={self.reads}>"

    async def follow(self, stream_id: str, meta: dict[bytes, bytes], remote: RemoteReader,
                     after: int) -> None:
        """Serve ``remote`` from ``after`` to its end."""
        reader = Reader(remote, after)
        followed = self.streams.get(stream_id)
        if followed is None:
            followed = self.streams[stream_id] = Followed(stream_id, meta,
                                                          quiet_since=self._loop.time())
        followed.readers.add(reader)
        remote.on_resume = self.changed
        self.changed()
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run())
        try:
            await reader.done
        finally:
            remote.on_resume = None
            followed.readers.discard(reader)
            if not followed.readers and self.streams.get(stream_id) is followed:
                del self.streams[stream_id]

    def changed(self) -> None:
        """A reader joined or resumed: the blocked read is woken (once per read)."""
        if not self._wake_due:
            self._wake_due = True
            self.source.wake()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for followed in list(self.streams.values()):
            for reader in list(followed.readers):
                reader.finish()

    async def _run(self) -> None:
        while self.streams:
            try:
                await self._pass()
            except StoreUnavailable:
                if self._outage_too_long():
                    self._finish_all()
                await asyncio.sleep(FOLLOW_RETRY)
            except Exception as exc:  # a bug: its readers end, and the log says why
                logger.warning("readers of streams generated elsewhere ended: %s: %s",
                               type(exc).__name__, exc)
                self._finish_all()

    async def _pass(self) -> None:
        self._drop_gone()
        cursors = self._cursors()
        marks = self._marks_due()
        self._wake_due = False
        found, self._wake_cursor = await self.source.read_many(cursors, self._wake_cursor,
                                                               marks)
        self.reads += 1
        self._failing_since = None
        now = self._loop.time()
        for stream_id, entries in found.items():
            followed = self.streams.get(stream_id)
            if followed is not None and entries:
                followed.quiet_since = now
                read_from = cursors[stream_id]
                for reader in list(followed.readers):
                    # one that joined during the read, behind it, takes the next one
                    if reader.active and reader.cursor >= read_from:
                        reader.write(entries)
        await self._look_at_quiet(cursors, now)

    def _drop_gone(self) -> None:
        for followed in self.streams.values():
            for reader in followed.readers:
                if reader.remote.gone:
                    reader.finish()

    def _cursors(self) -> dict[str, int]:
        """Each stream with a reader taking frames, from its reader furthest behind."""
        cursors: dict[str, int] = {}
        for stream_id, followed in self.streams.items():
            active = [reader.cursor for reader in followed.readers if reader.active]
            if active:
                cursors[stream_id] = min(active)
        return cursors

    def _marks_due(self) -> list[str]:
        """The marks are renewed once per MARK_INTERVAL, not once per read; a stream
        newly followed is marked at its first read (its owner may be about to cancel
        it as unread)."""
        now = self._loop.time()
        due = now - self._marked >= MARK_INTERVAL
        if due:
            self._marked = now
        marks = [s for s, followed in self.streams.items() if due or not followed.marked]
        for stream_id in marks:
            self.streams[stream_id].marked = True
        return marks

    async def _look_at_quiet(self, cursors: dict[str, int], now: float) -> None:
        """Streams without an entry for a whole block: heartbeats where due, and a look
        at the stream and its owner's lease (one round trip for all of them)."""
        block = FOLLOW_BLOCK_MS / 1000
        quiet = [self.streams[s] for s in cursors
                 if s in self.streams and now - self.streams[s].quiet_since >= block]
        if not quiet:
            return
        for followed in quiet:
            followed.quiet_since = now
            for reader in followed.readers:
                if reader.active and now - reader.remote.last_write >= self.heartbeat_interval:
                    reader.remote.write(followed.meta[b"hb"])
        answers = await self.source.still_there(
            [(f.stream_id, f.meta[b"owner"].decode()) for f in quiet])
        for followed, (kept, alive) in zip(quiet, answers, strict=True):
            self._judge(followed, kept, alive, now)

    def _judge(self, followed: Followed, kept: bool, alive: bool, now: float) -> None:
        """A stream gone (expired while its readers were paused: they close, and a
        resume gets 404) ends its readers; so does an owner gone for a whole lease,
        with owner_lost."""
        if not kept:
            for reader in list(followed.readers):
                reader.finish()
        elif alive:
            followed.missing_since = None
        elif followed.missing_since is None:
            followed.missing_since = now
        elif now - followed.missing_since >= self.source.lease:
            followed.end_lost()

    def _outage_too_long(self) -> bool:
        now = self._loop.time()
        if self._failing_since is None:
            self._failing_since = now
        return now - self._failing_since >= FOLLOW_OUTAGE

    def _finish_all(self) -> None:
        self._failing_since = None
        for followed in list(self.streams.values()):
            for reader in list(followed.readers):
                reader.finish()
