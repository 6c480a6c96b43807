"""sseserver: a fast, correct Server-Sent Events gateway for AI provider streams.

The command ``sseserver serve`` runs it (``sseserver --help``). Embedded, the public
API is:

``Server(config=None, *, sock=None)``
    The gateway bound to a socket, an async context manager: ``start()`` binds,
    ``serve_forever()`` waits until it stops, ``drain()`` stops gracefully (as
    SIGTERM does), ``close()`` stops at once; ``url`` and ``port`` say where it
    listens.
``load_config(toml_text=None, env=None, overrides=None)``
    A validated :class:`Config` from TOML text, ``SSESERVER_*`` variables and
    ``{"section.key": value}`` overrides, in that order of precedence. Raises
    ``sseserver.errors.ConfigError`` naming the bad setting.
``Config``
    The frozen settings, one section per table of ``docs/config.example.toml``.
``mint_token(secret, key, *, ttl=300, stream_id=None, model=None, provider=None,
max_tokens=None)``
    A short-lived signed token for a browser: one generation, or one stream by id
    (README, "Authentication").
``__version__``
    The installed version.

Example::

    config = sseserver.load_config(overrides={"server.port": 0, "server.demo": True})
    async with sseserver.Server(config) as server:
        print("listening on", server.url)
        await server.serve_forever()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Config", "Server", "__version__", "load_config", "mint_token"]

if TYPE_CHECKING:
    from sseserver.config import Config, load_config
    from sseserver.server import Server
    from sseserver.tokens import mint_token


def __getattr__(name: str) -> Any:
    # Lazy, so that importing a sans-IO submodule never pulls in asyncio.
    if name == "Server":
        from sseserver.server import Server

        return Server
    if name == "mint_token":
        from sseserver.tokens import mint_token

        return mint_token
    if name in ("Config", "load_config"):
        from sseserver import config

        return getattr(config, name)
    raise AttributeError(f"module 'sseserver' has no attribute {name!r}")


def __dir__() -> list[str]:
    # dir() and help() list the lazy names too, not only what is already imported.
    return sorted({*globals(), *__all__})
