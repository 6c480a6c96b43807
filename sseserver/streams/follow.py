"""A reader of a stream that another process generates: XREAD BLOCK after its
cursor, write, repeat, at its client's pace; ended by the stream's end entry, by the
owner's lapsed lease (``owner_lost``), or by a store out of reach for too long."""

from __future__ import annotations

import asyncio
from typing import Protocol

from sseserver.fanout import REPLAY_SLICE_BYTES, RemoteReader, with_event_id
from sseserver.streams.keys import entry_number

# How long a reader waits for a new entry before it looks at the owner's lease and
# sends a heartbeat if one is due (ms, as XREAD BLOCK takes it).
FOLLOW_BLOCK_MS = 1000
# Entries per XREAD: a reader catching up takes 64 frames (a few KiB of tokens) per
# round trip, then lets its connection's write buffer say whether to go on.
FOLLOW_COUNT = 64
# A reader that meets a store error retries this often, for at most FOLLOW_OUTAGE s,
# then closes its response (its client resumes later, as after any cut): longer than
# a Redis restart takes.
FOLLOW_RETRY = 0.1
FOLLOW_OUTAGE = 10.0
# How often a reader renews its mark that the stream is read here (which lasts a
# lease, 3 s): three renewals per mark, as the owner renews its lease.
MARK_INTERVAL = 1.0

Entries = list[tuple[bytes, dict[bytes, bytes]]]


class StoreUnavailable(Exception):
    """The store could not be asked (unreachable, restarting, timed out)."""


class Source(Protocol):
    lease: float  # s an owner's lease lasts after its last renewal

    async def read_after(self, stream_id: str, cursor: int, mark: bool) -> Entries:
        """Entries after ``cursor``, waiting up to FOLLOW_BLOCK_MS for the first;
        ``mark``: also say (for a lease) that the stream is being read here."""
        ...

    async def still_there(self, stream_id: str, owner: str) -> tuple[bool, bool]:
        """Whether the stream is still kept, and its owner's lease still held."""
        ...


class Follower:
    __slots__ = ("cursor", "failing_since", "heartbeat_interval", "loop", "marked", "meta",
                 "missing_since", "reader", "source", "stream_id")

    def __init__(self, source: Source, stream_id: str, meta: dict[bytes, bytes],
                 reader: RemoteReader, after: int, heartbeat_interval: float) -> None:
        self.source = source
        self.stream_id = stream_id
        self.meta = meta
        self.reader = reader
        self.cursor = after
        self.heartbeat_interval = heartbeat_interval
        self.missing_since: float | None = None  # when the owner's lease was first gone
        self.failing_since: float | None = None  # when the store first failed in a row
        self.marked = -MARK_INTERVAL  # when the mark was last renewed
        self.loop = asyncio.get_running_loop()

    def __repr__(self) -> str:
        return f"<Follower {self.stream_id} cursor={self.cursor}>"

    async def run(self) -> None:
        reader = self.reader
        while not reader.gone:
            await reader.writable()
            if reader.gone:
                return
            try:
                entries = await self.source.read_after(self.stream_id, self.cursor,
                                                       self._mark_due())
                ended = self._write(entries) if entries else await self._quiet()
            except StoreUnavailable:
                if self._outage_too_long():
                    return
                await asyncio.sleep(FOLLOW_RETRY)
                continue
            self.failing_since = None
            if ended:
                return

    def _mark_due(self) -> bool:
        """Whether to renew the mark that the stream is read here: once per
        MARK_INTERVAL, not once per read (a live reader reads once per frame)."""
        now = self.loop.time()
        if now - self.marked < MARK_INTERVAL:
            return False
        self.marked = now
        return True

    def _write(self, entries: Entries) -> bool:
        """Send the entries' frames in slices, as a local reader replays, stopping
        when the client's buffer is full (the rest is read again once it drains);
        True once the end entry is read."""
        reader = self.reader
        batch: list[bytes] = []
        size = 0
        for entry_id, fields in entries:
            frame = fields.get(b"f")
            if frame is None:  # the end entry: every frame before it is in the batch
                reader.write(b"".join(batch))
                return True
            batch.append(frame)
            size += len(frame)
            self.cursor = entry_number(entry_id)
            if size >= REPLAY_SLICE_BYTES:
                reader.write(b"".join(batch))
                batch, size = [], 0
                if reader.paused:
                    return False
        reader.write(b"".join(batch))
        return False

    async def _quiet(self) -> bool:
        """No entry for a whole block: a heartbeat if due, a look at the stream and its
        owner's lease; True when the stream is gone (expired while this reader was
        paused: it closes, and a resume gets 404) or its owner has been gone for a
        whole lease (the stream is ended with owner_lost)."""
        if self.loop.time() - self.reader.last_write >= self.heartbeat_interval:
            self.reader.write(self.meta[b"hb"])
        kept, alive = await self.source.still_there(self.stream_id,
                                                    self.meta[b"owner"].decode())
        if not kept:
            return True
        if alive:
            self.missing_since = None
            return False
        now = self.loop.time()
        if self.missing_since is None:
            self.missing_since = now
        if now - self.missing_since < self.source.lease:
            return False
        self._end_lost()
        return True

    def _end_lost(self) -> None:
        frames = [self.meta[b"lost"], self.meta[b"lostend"]]
        if self.meta.get(b"ids") == b"1":  # numbered after the last frame sent
            frames = [with_event_id(frame, self.cursor + n)
                      for n, frame in enumerate(frames, start=1)]
        self.reader.write(b"".join(frames))

    def _outage_too_long(self) -> bool:
        now = self.loop.time()
        if self.failing_since is None:
            self.failing_since = now
        return now - self.failing_since >= FOLLOW_OUTAGE
