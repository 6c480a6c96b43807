"""Where resumable streams are kept: this process's memory, or Redis (shared)."""

from __future__ import annotations

from sseserver.config import StreamSettings
from sseserver.errors import ConfigError
from sseserver.streams.local import LocalStreams
from sseserver.streams.store import StreamStore


def open_store(settings: StreamSettings) -> StreamStore:
    """The store ``streams.store`` names: "memory", or a redis://, rediss:// or
    unix:// URL (the redis extra: ``pip install 'sseserver[redis]'``)."""
    if settings.store == "memory":
        return LocalStreams(settings)
    try:
        from sseserver.streams.redis import RedisStreams  # the one module importing redis
    except ImportError as exc:
        raise ConfigError(f"streams.store names Redis, which needs the redis extra: "
                          f"pip install 'sseserver[redis]' ({exc.name} is missing)") from None
    return RedisStreams(settings)
