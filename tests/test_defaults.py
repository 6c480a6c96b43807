"""Defaults are written once, in config.py: the relay's policy and an upstream
connection's timeouts, made without a Config, are what a default Config gives."""

from __future__ import annotations

from sseserver import config as settings
from sseserver.aio.upstream import Timeouts
from sseserver.config import Config
from sseserver.core import sse
from sseserver.relay import RelayPolicy


def test_timeouts_default_to_the_upstream_settings() -> None:
    upstream = Config().upstream
    assert Timeouts() == Timeouts(upstream.connect_timeout, upstream.first_byte_timeout,
                                  upstream.idle_timeout, upstream.total_timeout)


def test_the_relay_policy_defaults_to_the_settings() -> None:
    config = Config()
    policy = RelayPolicy()
    expected = {
        "heartbeat_interval": config.streams.heartbeat_interval,
        "max_retries": config.upstream.max_retries,
        "backoff_initial": config.upstream.backoff_initial,
        "backoff_max": config.upstream.backoff_max,
        "max_event_bytes": config.upstream.max_event_bytes,
        "max_bytes_without_event": config.upstream.max_bytes_without_event,
    }
    assert {name: getattr(policy, name) for name in expected} == expected


def test_the_event_stream_parser_bounds_agree_with_the_settings() -> None:
    # core/sse.py keeps its own constants (a parser made with no settings at all)
    assert sse.MAX_EVENT_BYTES == settings.MAX_EVENT_BYTES
    assert sse.MAX_BYTES_WITHOUT_EVENT == settings.MAX_BYTES_WITHOUT_EVENT

