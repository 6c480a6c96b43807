"""A short streams.detached_idle_timeout with the Redis store: the owner looks for
readers elsewhere as often as the timeout needs, so a stream read only on another
server is not cancelled as unread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack
from tests.streams.redis_server import RedisServer, needs_redis, redis_server
from tests.streams.test_redis_store import read, settings_for, start, wait_for

pytestmark = needs_redis
# below the owner's once-a-second look when its interval did not follow the timeout
SHORT_IDLE = 0.4


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def test_a_stream_read_only_elsewhere_outlives_a_short_idle_timeout(
        redis: RedisServer) -> None:
    settings = settings_for(redis.url, **{"streams.detached_idle_timeout": SHORT_IDLE})
    with Stack(settings) as a, Stack(settings) as b:
        url = start(a, {"tokens": 60, "rate": 30})  # 2 s; nobody reads it on A
        resumable = a.server.gateway.store.get(url.rsplit("/", 1)[1])  # type: ignore[union-attr]
        events = read(b, url)
        assert resumable.relay.status != "cancelled"
        assert len(events) == 63 and events[-1][2] == "[DONE]"
        # and once nobody reads it anywhere, the short timeout still cancels it
        unread = start(a, {"tokens": 300, "rate": 30})  # 10 s
        left = a.server.gateway.store.get(unread.rsplit("/", 1)[1])  # type: ignore[union-attr]
        assert read(b, unread, after=0, limit=1)
        # the reader's mark lapses with a lease (3 s), then the idle limit runs
        wait_for(lambda: left.relay.status == "cancelled", seconds=8)
