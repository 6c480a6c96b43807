"""What the gate counts per key, and where: streams running, the token buckets, and
the create tokens already spent.

:class:`LocalLedger` keeps it in memory, for a server of one process. With
``--workers N`` every worker would count for itself (a concurrency limit of 10
admitting 10 x N, a create token usable N times), so the workers count in one
:class:`~sseserver.shared_ledger.SharedLedger` instead. Both take the same decision,
:func:`sseserver.core.auth.admission`, once per request.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from sseserver.auth_settings import KeySettings
from sseserver.core.auth import Outcome, TokenBucket, admission


class Ledger(Protocol):
    def install(self, keys: Mapping[str, KeySettings]) -> None:
        """The configured keys changed (a reload)."""

    def admit(self, key: KeySettings, stream: bool, nonce: str, expires: int, now: float,
              take: bool) -> tuple[Outcome, float]:
        """The outcome of one request of ``key`` and the seconds to wait if refused.
        With ``take`` an admitted request holds what it asked for: a stream (when
        ``stream``), and the create token ``nonce`` (when set) spent until ``expires``;
        without, nothing changes (a look ahead of the body)."""

    def give_back(self, name: str, stream: bool, nonce: str) -> None:
        """Undo what an admitted request held, when it started no stream after all."""

    def stream_added(self, name: str) -> None: ...

    def stream_ended(self, name: str) -> None: ...

    def active(self, name: str) -> int:
        """Streams of the key running in this process."""


class LocalLedger:
    """The ledger of a server of one process: plain dicts, no lock."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._active: dict[str, int] = {}
        self._spent: set[str] = set()
        self._spent_expiry: list[tuple[int, str]] = []

    def __repr__(self) -> str:
        return f"<LocalLedger active={sum(self._active.values())} spent={len(self._spent)}>"

    def install(self, keys: Mapping[str, KeySettings]) -> None:
        self._buckets = {name: bucket for name, bucket in self._buckets.items()
                         if name in keys and bucket.per_minute == keys[name].requests_per_minute}

    def admit(self, key: KeySettings, stream: bool, nonce: str, expires: int, now: float,
              take: bool) -> tuple[Outcome, float]:
        bucket = self._bucket(key)
        if bucket is not None and not take:
            bucket = replace(bucket)  # a look: the key's own bucket keeps its tokens
        outcome, wait = admission(spent=bool(nonce) and nonce in self._spent, stream=stream,
                                  active=self._active.get(key.name, 0),
                                  max_streams=key.max_streams, bucket=bucket, now=now)
        if take and outcome is Outcome.ADMITTED:
            if stream:
                self.stream_added(key.name)
            if nonce:
                self._spend(nonce, expires, now)
        return outcome, wait

    def _bucket(self, key: KeySettings) -> TokenBucket | None:
        if not key.requests_per_minute:
            return None
        bucket = self._buckets.get(key.name)
        if bucket is None:
            bucket = self._buckets[key.name] = TokenBucket(key.requests_per_minute)
        return bucket

    def _spend(self, nonce: str, expires: int, now: float) -> None:
        """Remember a create token until it expires, forgetting the expired ones."""
        expiry = self._spent_expiry
        while expiry and expiry[0][0] <= now:
            self._spent.discard(heapq.heappop(expiry)[1])
        self._spent.add(nonce)
        heapq.heappush(expiry, (expires, nonce))

    def give_back(self, name: str, stream: bool, nonce: str) -> None:
        if stream:
            self.stream_ended(name)
        self._spent.discard(nonce)

    def stream_added(self, name: str) -> None:
        self._active[name] = self._active.get(name, 0) + 1

    def stream_ended(self, name: str) -> None:
        left = self._active.get(name, 0) - 1
        if left > 0:
            self._active[name] = left
        else:
            self._active.pop(name, None)

    def active(self, name: str) -> int:
        return self._active.get(name, 0)

    @property
    def spent_count(self) -> int:
        return len(self._spent)
