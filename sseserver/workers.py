"""``--workers N``: N processes share one port through SO_REUSEPORT, supervised.

The parent forks the workers and watches them: a worker that dies is replaced (with a
short pause so a crash loop cannot spin), and SIGTERM or SIGINT is passed on to every
worker as SIGTERM, each of which drains its own streams, before the parent exits. A
SIGINT during that drain (a second Ctrl-C) is passed on as a second SIGTERM, which
makes each worker stop at once. Workers ignore SIGINT themselves: a Ctrl-C reaches
the whole process group, and only the parent counts them.

Each worker holds a slot (0..N-1) and a channel to the parent; the parent gives every
pair of workers a channel of their own (aio/worker_channel.py), passed over those, and
again to a worker started in a dead one's slot. Over them the workers hand each other
the connections for streams they hold and sum their counters (peers.py). A worker's
stream ids name its slot and incarnation (stream_ids.py): its replacement owns none
of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from sseserver import shared_ledger, stream_ids
from sseserver.aio.worker_channel import WorkerPlace, channel_pair, send_blocking
from sseserver.config import Config
from sseserver.stopping import FORCING_SIGNALS, StopStage, next_stage

logger = logging.getLogger("sseserver.workers")

# A worker that dies sooner than this after its start is restarted only after a pause.
MIN_WORKER_LIFETIME = 1.0
# Seconds the parent waits to put an introduction in a worker's channel. A message is
# a few bytes in a socket buffer that holds hundreds: only a worker that stopped
# reading long ago makes it wait, and the parent must not hang on one.
CONTROL_SEND_TIMEOUT = 2.0

Serve = Callable[[Config, WorkerPlace], int]


@dataclass(slots=True)
class Slot:
    incarnation: int
    control: socket.socket  # the parent's end of the worker's channel
    pid: int = 0
    started: float = 0.0


class Workers:
    """The parent's slots: forks their workers and introduces each pair."""

    def __init__(self, config: Config, serve: Serve) -> None:
        self._config = config
        self._serve = serve
        self._slots: dict[int, Slot] = {}  # the slots whose worker runs
        self._incarnations: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"<Workers running={len(self._slots)}/{self._config.server.workers}>"

    @property
    def pids(self) -> list[int]:
        return [slot.pid for slot in self._slots.values()]

    def start_all(self) -> None:
        count = self._config.server.workers
        for number in range(count):
            self._fork(number)
        for first in range(count):
            for second in range(first + 1, count):
                self._introduce(first, second)

    def exited(self, pid: int) -> tuple[int, float] | None:
        """The slot and start time of the worker that exited; None if it was none."""
        for number, slot in self._slots.items():
            if slot.pid == pid:
                del self._slots[number]
                slot.control.close()
                return number, slot.started
        return None

    def restart(self, number: int) -> None:
        """A new worker in the slot, introduced to every running one."""
        self._fork(number)
        for other in list(self._slots):
            if other != number:
                self._introduce(number, other)

    def close(self) -> None:
        for slot in self._slots.values():
            slot.control.close()
        self._slots.clear()

    def _fork(self, number: int) -> None:
        incarnation = self._incarnations[number] = self._incarnations.get(number, -1) + 1
        ours, theirs = channel_pair()
        pid = os.fork()
        if pid == 0:  # the worker
            ours.close()
            for slot in self._slots.values():
                slot.control.close()
            os._exit(self._run_worker(WorkerPlace(number, incarnation,
                                                  self._config.server.workers, theirs)))
        theirs.close()
        ours.settimeout(CONTROL_SEND_TIMEOUT)
        self._slots[number] = Slot(incarnation, ours, pid, time.monotonic())

    def _run_worker(self, place: WorkerPlace) -> int:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker reloads on it
        stream_ids.set_owner(stream_ids.Owner(place.slot, place.incarnation))
        return self._serve(self._config, place)

    def _introduce(self, first: int, second: int) -> None:
        """A channel between two running workers, one end to each."""
        one, other = channel_pair()
        with one, other:  # each worker has its own descriptor once sent
            for slot, peer, end in ((first, second, one), (second, first, other)):
                head = {"kind": "peer", "slot": peer,
                        "incarnation": self._slots[peer].incarnation}
                if not send_blocking(self._slots[slot].control, head, end.fileno()):
                    logger.warning("worker %d did not take its channel to worker %d",
                                   slot, peer)


def _tell(pids: list[int], signum: int) -> None:
    """Pass a signal on to every worker (SIGHUP: reload the API keys)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def run_workers(config: Config, serve: Serve) -> int:
    workers = Workers(config, serve)
    stage = StopStage.RUNNING

    def forward(signum: int, _frame: object) -> None:
        nonlocal stage
        before, stage = stage, next_stage(stage, signum, FORCING_SIGNALS)
        if stage is not before:
            _tell(workers.pids, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: _tell(workers.pids, signal.SIGHUP))
    shared_ledger.prepare_for_workers(config)  # before the fork: every worker maps it
    workers.start_all()
    exit_code = 0
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        exited = workers.exited(pid)
        shared_ledger.worker_exited(pid)
        code = os.waitstatus_to_exitcode(status)
        if stage is not StopStage.RUNNING:
            exit_code = exit_code or (code if code > 0 else 0)
            continue
        if exited is None:
            continue
        number, started = exited
        logger.warning("worker %d exited with %d; starting a new one", pid, code)
        if time.monotonic() - started < MIN_WORKER_LIFETIME:
            time.sleep(MIN_WORKER_LIFETIME)
        workers.restart(number)
    workers.close()
    return exit_code
