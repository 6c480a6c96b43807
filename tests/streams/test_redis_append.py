"""The owner's writes to a real redis-server: one write per loop pass whatever the
number of frames and streams in it, sent in the next pass (never held for a reply),
stored as the same bytes at the entry of each frame's id."""

from __future__ import annotations

import asyncio
import time

import pytest

from sseserver.config import StreamSettings
from sseserver.streams.keys import events_key
from sseserver.streams.redis import RedisStreams
from tests.streams.redis_server import RedisServer, needs_redis, redis_server

pytestmark = needs_redis


@pytest.fixture(scope="module")
def redis() -> RedisServer:
    with redis_server() as server:
        yield server  # type: ignore[misc]


async def connected(url: str) -> RedisStreams:
    store = RedisStreams(StreamSettings(store=url))
    deadline = time.monotonic() + 10
    while not store.up:
        assert time.monotonic() < deadline, "the store did not connect"
        await asyncio.sleep(0.01)
    return store


def test_the_frames_of_one_pass_go_out_in_one_write_in_the_next(redis: RedisServer) -> None:
    async def scenario() -> None:
        store = await connected(redis.url)
        try:
            logs = [store.new_log(f"s{n}") for n in range(3)]
            writes = store.appender.writes
            for event_id in range(1, 51):  # one pass: 150 frames of 3 streams
                for log in logs:
                    log.append(b"id: %d\ndata: x\n\n" % event_id)
            assert store.appender.writes == writes  # nothing sent inside the pass
            await asyncio.sleep(0)  # the next pass
            assert store.appender.writes == writes + 1
            await asyncio.sleep(0.05)  # Redis's round trip, nothing more
            entries = await store.redis.xrange(events_key("s1"))
            assert [e[0] for e in entries] == [b"%d-0" % n for n in range(1, 51)]
            assert entries[6][1] == {b"f": b"id: 7\ndata: x\n\n"}
            logs[1].finish()
            await asyncio.sleep(0.05)
            last = await store.redis.xrevrange(events_key("s1"), count=1)
            assert last[0] == (b"51-0", {b"end": b"1"})
            assert await store.redis.ttl(events_key("s1")) > 0
            assert store.appender.refusals == 0
        finally:
            await store.close()

    asyncio.run(scenario())
