"""A stream that ended before a Redis restart is stored again by its owner's resync,
and still expires streams.retention after its end, not after the resync."""

from __future__ import annotations

import time

import httpx

from sseserver.streams.keys import meta_key
from tests.e2e.stack import Stack, request_body
from tests.streams.redis_server import needs_redis, redis_server
from tests.streams.test_redis_store import read, settings_for, start, wait_for

pytestmark = needs_redis
RETENTION = 6.0
BEFORE_RESTART = 3.0  # s between the stream's end and the Redis restart


def test_a_resync_keeps_a_finished_streams_expiry() -> None:
    with redis_server() as own, \
            Stack(settings_for(own.url, **{"streams.retention": RETENTION})) as a:
        url = start(a, {"tokens": 3})
        stream_id = url.rsplit("/", 1)[1]
        assert len(read(a, url)) == 6  # ended
        time.sleep(BEFORE_RESTART)
        own.restart()  # empty, as a restart without persistence
        wait_for(lambda: httpx.post(a.url + "/v1/streams",
                                    json=request_body({"tokens": 1})).status_code == 201)
        wait_for(lambda: own.command("EXISTS", meta_key(stream_id)) == b":1\r\n")
        ttl = int(own.command("TTL", meta_key(stream_id))[1:])
        assert 0 < ttl <= RETENTION - BEFORE_RESTART + 1, ttl
        ended = own.command("HGET", meta_key(stream_id), "ended").split(b"\r\n")[1]
        assert abs(float(ended) + BEFORE_RESTART - time.time()) < BEFORE_RESTART
