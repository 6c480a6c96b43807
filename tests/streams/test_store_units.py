"""The stream stores' pure parts: the setting, the choice of store, the RESP encoding
of the writes (against redis-py's own encoder), the frames of a lost owner."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection

from sseserver.config import StreamSettings, load_config
from sseserver.errors import ConfigError
from sseserver.fanout import with_event_id
from sseserver.formats.ai_sdk import AISDKFormatter
from sseserver.formats.sse import SSEFormatter
from sseserver.streams import open_store
from sseserver.streams.keys import (
    encode_command,
    encode_xadd,
    entry_number,
    events_key,
    meta_key,
    reading_key,
    xadd_prefix,
)
from sseserver.streams.local import LocalStreams
from sseserver.streams.redis import RedisStreams, lost_frames


def redis_py(*args: object) -> bytes:
    return b"".join(Connection().pack_command(*args))


@pytest.mark.parametrize("url", ["memory", "redis://127.0.0.1:6379/0",
                                 "rediss://user:secret@redis.example:6380",
                                 "unix:///run/redis/redis.sock?db=2"])
def test_the_store_setting_takes_memory_and_redis_urls(url: str) -> None:
    assert load_config(f'[streams]\nstore = "{url}"').streams.store == url


@pytest.mark.parametrize("url", ["redis://", "postgres://user:hunter2@db", "Memory", "",
                                 "user:hunter2@redis.example"])
def test_another_store_is_refused_without_showing_a_password(url: str) -> None:
    with pytest.raises(ConfigError, match=r"streams\.store") as caught:
        load_config(f'[streams]\nstore = "{url}"')
    assert "hunter2" not in str(caught.value)


def test_the_default_store_is_this_process_memory() -> None:
    store = open_store(StreamSettings())
    assert type(store) is LocalStreams and store.shared is False


def test_a_redis_url_opens_the_shared_store_without_connecting_yet() -> None:
    store = open_store(StreamSettings(store="redis://127.0.0.1:1/0"))
    assert isinstance(store, RedisStreams) and store.shared is True and not store.up


def test_every_key_of_a_stream_has_its_hash_tag() -> None:
    for key in (events_key("abc"), meta_key("abc"), reading_key("abc")):
        assert "{abc}" in key  # one Redis Cluster slot per stream


@pytest.mark.parametrize("args", [("HSET", "sse:{a}:m", "owner", "n1", "ids", 1),
                                  ("EXPIRE", "sse:{a}:e", 3900),
                                  ("XADD", "k", b"1-0", "f", b"\x00\xff\r\n")])
def test_commands_are_encoded_as_redis_py_encodes_them(args: tuple[object, ...]) -> None:
    assert encode_command(*args) == redis_py(*args)  # type: ignore[arg-type]


def test_a_frame_is_one_xadd_at_its_event_id() -> None:
    frame = b'id: 12\ndata: {"content":"hi"}\n\n'
    assert encode_xadd(xadd_prefix("s1"), 12, frame) == \
        redis_py("XADD", "sse:{s1}:e", "12-0", "f", frame)
    assert entry_number(b"12-0") == 12


def test_a_lost_owner_ends_an_sse_stream_with_numbered_frames() -> None:
    error, end, numbered = lost_frames(SSEFormatter())
    assert numbered and not error.startswith(b"id:")
    assert with_event_id(error, 7).endswith(b"id: 7\n\n") and b"owner_lost" in error
    assert b'"retryable":true' in error and end == b"data: [DONE]\n\n"


def test_a_lost_owner_ends_a_ui_message_stream_unnumbered() -> None:
    formatter = AISDKFormatter()
    error, end, numbered = lost_frames(formatter)
    assert not numbered and b'"type":"error"' in error and end == b"data: [DONE]\n\n"
    assert formatter.failed is False  # made by a copy: the stream's own is untouched
