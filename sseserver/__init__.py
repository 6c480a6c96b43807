"""sseserver: a fast, correct Server-Sent Events gateway for AI provider streams."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Config", "Server", "__version__", "load_config"]

if TYPE_CHECKING:
    from sseserver.config import Config, load_config
    from sseserver.server import Server


def __getattr__(name: str) -> Any:
    # Lazy, so that importing a sans-IO submodule never pulls in asyncio.
    if name == "Server":
        from sseserver.server import Server

        return Server
    if name in ("Config", "load_config"):
        from sseserver import config

        return getattr(config, name)
    raise AttributeError(f"module 'sseserver' has no attribute {name!r}")
