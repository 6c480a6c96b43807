"""``--workers N``: N processes share one port through SO_REUSEPORT, supervised.

The parent forks the workers and watches them: a worker that dies is replaced (with a
short pause so a crash loop cannot spin), and SIGTERM or SIGINT is passed on to every
worker as SIGTERM, each of which drains its own streams, before the parent exits. A
SIGINT during that drain (a second Ctrl-C) is passed on as a second SIGTERM, which
makes each worker stop at once. Workers ignore SIGINT themselves: a Ctrl-C reaches
the whole process group, and only the parent counts them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

from sseserver import shared_ledger
from sseserver.config import Config
from sseserver.stopping import FORCING_SIGNALS, StopStage, next_stage

logger = logging.getLogger("sseserver.workers")

# A worker that dies sooner than this after its start is restarted only after a pause.
MIN_WORKER_LIFETIME = 1.0


def _tell(children: dict[int, float], signum: int) -> None:
    """Pass a signal on to every worker (SIGHUP: reload the API keys)."""
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def run_workers(config: Config, serve: Callable[[Config], int]) -> int:
    children: dict[int, float] = {}
    stage = StopStage.RUNNING

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker reloads on it
            os._exit(serve(config))
        children[pid] = time.monotonic()

    def forward(signum: int, _frame: object) -> None:
        nonlocal stage
        before, stage = stage, next_stage(stage, signum, FORCING_SIGNALS)
        if stage is before:
            return
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: _tell(children, signal.SIGHUP))
    shared_ledger.prepare_for_workers(config)  # before the fork: every worker maps it
    for _ in range(config.server.workers):
        spawn()
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        started = children.pop(pid, time.monotonic())
        shared_ledger.worker_exited(pid)
        code = os.waitstatus_to_exitcode(status)
        if stage is not StopStage.RUNNING:
            exit_code = exit_code or (code if code > 0 else 0)
            continue
        logger.warning("worker %d exited with %d; starting a new one", pid, code)
        if time.monotonic() - started < MIN_WORKER_LIFETIME:
            time.sleep(MIN_WORKER_LIFETIME)
        spawn()
    return exit_code
