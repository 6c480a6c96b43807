"""The gate's counts shared by the workers of one server (``--workers N``).

The parent maps one table into memory before it forks (:func:`prepare_for_workers`),
and every worker counts in it, so a limit holds for the server, not per worker:

- a row per key name: its token bucket, and its running streams in one column per
  worker. A worker owns a column (its pid in the column's owner cell); when it dies,
  the parent zeroes that column (:func:`worker_exited`), releasing the streams it held.
- spent create tokens: a fingerprint and an expiry each, in buckets of fixed size
  chosen by the fingerprint. An expired entry is free again.

Each update is a few reads and writes under an fcntl (POSIX record) lock on the
table's file, taken once per request and once per stream end, never per token. The
file is unlinked at once: it lives as long as the processes that map it, and a
process that dies holding the lock loses it with its life.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sseserver.auth_settings import KeySettings
from sseserver.core.auth import Outcome, TokenBucket, admission

if TYPE_CHECKING:
    from sseserver.config import Config

logger = logging.getLogger("sseserver.auth")

NAME_BYTES = 64  # a key name is at most 64 ASCII characters (auth_settings)
# Rows for the key names seen over the server's life (reloads may add names): far
# above any real list of keys. Past it, a new name takes the row of a name with no
# stream running, whose bucket then starts full again.
MAX_KEY_ROWS = 1024
# Spent create tokens remembered at once: 16,384 buckets of 16 (6 MiB, touched pages
# only). Tokens live at most auth.max_token_ttl (an hour by default); at 30,000 live
# create tokens, 8 a second for an hour, the expected number of full buckets is 2e-6.
# A full bucket refuses the token (503) rather than forget a spent one.
TOKEN_BUCKETS = 16384
TOKEN_BUCKET_SLOTS = 16
# Seconds a request is told to wait when the table has no room: tokens expire and
# streams end within minutes; a few seconds spares a retrying client's burst.
NO_ROOM_RETRY_AFTER = 5.0
# tmpfs when there is one: the table is never meant for a disk
_TABLE_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None

_OWNER = struct.Struct("<q")  # the pid that owns a worker column; 0: free
_ROW_HEAD = struct.Struct(f"<{NAME_BYTES}sqdd")  # name, per_minute, tokens, updated
_ENTRY = struct.Struct("<16sq")  # a spent token's fingerprint, its expiry (Unix s)
_BUCKET = struct.Struct("<" + "16sq" * TOKEN_BUCKET_SLOTS)
_EMPTY_NAME = bytes(NAME_BYTES)


class _FileLock:
    """The table's lock: a POSIX record lock on its file, released by the kernel if
    its holder dies. Never nested: a process holds one such lock, and an inner
    release would free the outer."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN)


def _fingerprint(nonce: str) -> bytes:
    return hashlib.sha256(nonce.encode()).digest()[:16]


class SharedLedger:
    """A :class:`~sseserver.key_ledger.Ledger` in memory shared across a fork."""

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self._actives = struct.Struct(f"<{columns}i")
        self._row_size = _ROW_HEAD.size + self._actives.size
        self._rows_at = columns * _OWNER.size
        self._tokens_at = self._rows_at + MAX_KEY_ROWS * self._row_size
        size = self._tokens_at + TOKEN_BUCKETS * _BUCKET.size
        # kept open as long as the server runs: the lock and the map need it
        self._file = tempfile.TemporaryFile(dir=_TABLE_DIR)  # noqa: SIM115
        self._file.truncate(size)
        self._lock = _FileLock(self._file.fileno())
        self._map = mmap.mmap(self._file.fileno(), size)
        self._column: int | None = None  # this process's, claimed at its first count
        self._rows: dict[str, int] = {}  # key name -> row offset, as last found
        os.register_at_fork(after_in_child=self._forget_column)

    def _forget_column(self) -> None:
        self._column = None  # a new worker: the parent's column is not its own

    def __repr__(self) -> str:
        return f"<SharedLedger columns={self.columns} size={len(self._map)}>"

    # -- the ledger ------------------------------------------------------------------

    def install(self, keys: Mapping[str, KeySettings]) -> None:
        """Nothing to do: a bucket whose rate changed starts full at its next use."""

    def admit(self, key: KeySettings, stream: bool, nonce: str, expires: int, now: float,
              take: bool) -> tuple[Outcome, float]:
        fingerprint = _fingerprint(nonce) if nonce else b""
        with self._lock:
            row = self._row(key.name)
            if row is None:
                return Outcome.NO_ROOM, NO_ROOM_RETRY_AFTER
            bucket = self._bucket(row, key.requests_per_minute)
            outcome, wait = admission(
                spent=bool(nonce) and self._spent_slot(fingerprint, now) is not None,
                stream=stream, active=sum(self._actives.unpack_from(
                    self._map, row + _ROW_HEAD.size)),
                max_streams=key.max_streams, bucket=bucket, now=now)
            if not take:
                return outcome, wait
            if bucket is not None:
                _ROW_HEAD.pack_into(self._map, row, key.name.encode(), bucket.per_minute,
                                    bucket.tokens, bucket.updated)
            if outcome is Outcome.ADMITTED and nonce and \
                    not self._spend(fingerprint, expires, now):
                return Outcome.NO_ROOM, NO_ROOM_RETRY_AFTER
            if outcome is Outcome.ADMITTED and stream:
                self._add(row, 1)
            return outcome, wait

    def give_back(self, name: str, stream: bool, nonce: str) -> None:
        with self._lock:
            row = self._row(name)
            if row is not None and stream:
                self._add(row, -1)
            if nonce:
                self._unspend(_fingerprint(nonce))

    def stream_added(self, name: str) -> None:
        self._count(name, 1)

    def stream_ended(self, name: str) -> None:
        self._count(name, -1)

    def active(self, name: str) -> int:
        row = self._rows.get(name)
        if row is None or self._column is None:
            return 0
        return int(struct.unpack_from("<i", self._map, self._active_at(row))[0])

    def _count(self, name: str, delta: int) -> None:
        with self._lock:
            row = self._row(name)
            if row is not None:
                self._add(row, delta)

    # -- rows, columns and buckets (under the lock) -----------------------------------

    def _row(self, name: str) -> int | None:
        """The offset of the row of ``name``, claimed if it has none; None if full."""
        wanted = name.encode().ljust(NAME_BYTES, b"\0")
        row = self._rows.get(name)
        if row is not None and self._map[row:row + NAME_BYTES] == wanted:
            return row
        empty = idle = None
        for index in range(MAX_KEY_ROWS):
            row = self._rows_at + index * self._row_size
            held = self._map[row:row + NAME_BYTES]
            if held == wanted:
                self._rows[name] = row
                return row
            if held == _EMPTY_NAME:  # rows fill from the first and never empty again
                empty = row
                break
            if idle is None and not any(self._actives.unpack_from(
                    self._map, row + _ROW_HEAD.size)):
                idle = row
        free = empty if empty is not None else idle
        if free is None:
            logger.error("no row left in the shared key table for key %r", name)
            return None
        self._map[free:free + self._row_size] = bytes(self._row_size)
        _ROW_HEAD.pack_into(self._map, free, wanted, 0, -1.0, 0.0)
        self._rows[name] = free
        return free

    def _bucket(self, row: int, per_minute: int) -> TokenBucket | None:
        if not per_minute:
            return None
        _name, stored, tokens, updated = _ROW_HEAD.unpack_from(self._map, row)
        if stored != per_minute:  # new, or its rate changed with a reload: full again
            return TokenBucket(per_minute)
        return TokenBucket(per_minute, tokens, updated)

    def _active_at(self, row: int) -> int:
        return row + _ROW_HEAD.size + 4 * self._own_column()

    def _add(self, row: int, delta: int) -> None:
        at = self._active_at(row)
        count = struct.unpack_from("<i", self._map, at)[0]
        struct.pack_into("<i", self._map, at, max(0, count + delta))

    def _own_column(self) -> int:
        """This worker's column, claimed at its first count."""
        if self._column is not None:
            return self._column
        pid = os.getpid()
        owners = [_OWNER.unpack_from(self._map, c * _OWNER.size)[0]
                  for c in range(self.columns)]
        column = owners.index(0) if 0 in owners else pid % self.columns
        if 0 not in owners:  # only if a dead worker's column was not released
            logger.error("no free worker column in the shared key table; sharing one")
        _OWNER.pack_into(self._map, column * _OWNER.size, pid)
        self._column = column
        return column

    def release_worker(self, pid: int) -> None:
        """A worker died: its column's streams are no longer running (the parent)."""
        with self._lock:
            for column in range(self.columns):
                if _OWNER.unpack_from(self._map, column * _OWNER.size)[0] != pid:
                    continue
                _OWNER.pack_into(self._map, column * _OWNER.size, 0)
                for index in range(MAX_KEY_ROWS):
                    at = self._rows_at + index * self._row_size + _ROW_HEAD.size
                    struct.pack_into("<i", self._map, at + 4 * column, 0)

    # -- spent tokens (under the lock) ----------------------------------------------

    def _slots(self, fingerprint: bytes) -> tuple[int, tuple[Any, ...]]:
        bucket = int.from_bytes(fingerprint[:4], "little") % TOKEN_BUCKETS
        at = self._tokens_at + bucket * _BUCKET.size
        return at, _BUCKET.unpack_from(self._map, at)

    def _spent_slot(self, fingerprint: bytes, now: float) -> int | None:
        at, values = self._slots(fingerprint)
        for slot in range(TOKEN_BUCKET_SLOTS):
            if values[2 * slot] == fingerprint and values[2 * slot + 1] > now:
                return at + slot * _ENTRY.size
        return None

    def _spend(self, fingerprint: bytes, expires: int, now: float) -> bool:
        at, values = self._slots(fingerprint)
        for slot in range(TOKEN_BUCKET_SLOTS):
            if values[2 * slot + 1] <= now:
                _ENTRY.pack_into(self._map, at + slot * _ENTRY.size, fingerprint, expires)
                return True
        logger.error("no room to remember one more spent create token")
        return False

    def _unspend(self, fingerprint: bytes) -> None:
        at = self._spent_slot(fingerprint, float("-inf"))
        if at is not None:
            _ENTRY.pack_into(self._map, at, bytes(16), 0)


_shared: SharedLedger | None = None  # set in the parent before it forks the workers


def prepare_for_workers(config: Config) -> None:
    """In the parent, before the workers are forked: the table they will share."""
    global _shared
    if config.server.workers > 1 and config.auth.enabled:
        _shared = SharedLedger(config.server.workers)


def shared_ledger() -> SharedLedger | None:
    """The table of this server's workers, or None for a server of one process."""
    return _shared


def worker_exited(pid: int) -> None:
    """In the parent, when a worker has died: release what it held."""
    if _shared is not None:
        _shared.release_worker(pid)
