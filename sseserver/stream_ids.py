"""Stream ids: 128 random bits, and under ``--workers`` the worker that owns the stream.

With the memory store a stream lives in one worker process, and the kernel spreads
connections over the workers (SO_REUSEPORT), so a request about a stream must be able
to tell whose it is from its id alone. A worker's ids read ``SLOT.INCARNATION.RANDOM``:
the worker's place among the N (0..N-1), how many times that place has been started
before (a worker started again owns none of its predecessor's streams), and the random
part that makes the id unguessable. A single process's ids are the random part alone.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

# 128 random bits: unguessable, so a stream id can serve as its own capability.
RANDOM_BYTES = 16
# Ids made from one read of the system's random source: secrets.token_urlsafe reads it
# once per id (a getrandom call each); these bytes are as unpredictable, read 64 ids
# at a time (1 KiB, held until used).
IDS_PER_READ = 64
# Bounds on the numbers an id may carry: a slot past any sane worker count, or a number
# of restarts a supervisor never reaches, is no id of ours (and is not parsed as one).
_MAX_NUMBER_DIGITS = 6


@dataclass(frozen=True, slots=True)
class Owner:
    """A worker: its slot among the server's workers and the how-many-th start of it."""

    slot: int
    incarnation: int

    def __str__(self) -> str:
        return f"{self.slot}.{self.incarnation}"


_this_process: list[Owner | None] = [None]  # set once, in a worker, before it serves


def set_owner(owner: Owner | None) -> None:
    """Name the worker this process is; the ids it makes from now on carry it."""
    _this_process[0] = owner


def this_owner() -> Owner | None:
    return _this_process[0]


# Random parts not handed out yet; list.pop is atomic, so no two callers get one id.
_unused: list[str] = []


def _forget_unused() -> None:
    """A forked process must not hand out the ids its parent holds (or will)."""
    _unused.clear()


os.register_at_fork(after_in_child=_forget_unused)


def _read_random_parts() -> None:
    block = os.urandom(RANDOM_BYTES * IDS_PER_READ)
    _unused.extend(  # as secrets.token_urlsafe makes them: URL-safe base64, no padding
        base64.urlsafe_b64encode(block[start:start + RANDOM_BYTES]).rstrip(b"=").decode()
        for start in range(0, len(block), RANDOM_BYTES))


def random_part() -> str:
    """RANDOM_BYTES random bytes as URL-safe text (secrets.token_urlsafe's form)."""
    try:
        return _unused.pop()
    except IndexError:
        _read_random_parts()
        return _unused.pop()


def new_stream_id() -> str:
    token = random_part()
    owner = _this_process[0]
    return token if owner is None else f"{owner}.{token}"


def owner_of(stream_id: str) -> Owner | None:
    """The worker an id names, or None (a single process's id, or no id of ours)."""
    parts = stream_id.split(".")
    if len(parts) != 3:
        return None
    slot, incarnation, _ = parts
    if not (_number(slot) and _number(incarnation)):
        return None
    return Owner(int(slot), int(incarnation))


def _number(text: str) -> bool:
    return 0 < len(text) <= _MAX_NUMBER_DIGITS and text.isascii() and text.isdigit()
