"""The pool's finish takes a connection whose response ended with keep-alive without
asking disposal: its answer is disposal's for every state, keep-alive and completeness."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from sseserver.aio.pool import ConnectionPool
from sseserver.aio.upstream import State, Timeouts, UpstreamConnection
from sseserver.core.chunked import LengthDecoder
from sseserver.core.pooling import disposal
from tests.conftest import run_async


@pytest.mark.parametrize(("state", "keep_alive", "complete"), list(itertools.product(
    list(State), [True, False], [True, False])))
def test_finish_answers_as_disposal(state: State, keep_alive: bool, complete: bool) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pool = ConnectionPool(Timeouts())
        conn = UpstreamConnection(Timeouts(), loop, "http://127.0.0.1:1")
        conn.state = state
        conn._keep_alive = keep_alive
        conn._decoder = LengthDecoder(0)  # an ended body with nothing after it
        expected = disposal(ended=state is State.DONE, in_body=state is State.BODY,
                            keep_alive=conn.keep_alive, complete=complete)
        assert pool.finish(conn, complete=complete) is expected
        pool.close()

    run_async(main)
