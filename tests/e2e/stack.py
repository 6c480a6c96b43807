"""A real sseserver and a real fake provider on loopback, in a background event loop.

Tests talk to both over sockets with ordinary clients (httpx, httpx-sse, sseclient-py,
raw sockets), exactly as users do.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import orjson
import uvloop

from sseserver.config import load_config
from sseserver.fake import FakeProvider
from sseserver.server import Server

T = TypeVar("T")


class Stack:
    """Server + fake provider. ``settings`` are dotted config overrides."""

    def __init__(self, settings: dict[str, Any] | None = None, provider_kind: str = "openai",
                 toml: str | None = None, fake_ssl: Any = None) -> None:
        self.settings = settings or {}
        self.provider_kind = provider_kind
        self.toml = toml
        self.fake_ssl = fake_ssl
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: Server | None = None
        self.fake: FakeProvider | None = None

    def __enter__(self) -> Stack:
        self._thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run_sync(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.call(wrapper())

    async def _start(self) -> None:
        self.fake = FakeProvider("127.0.0.1", 0, ssl=self.fake_ssl)
        await self.fake.start()
        env = {"OPENAI_API_KEY": "sk-test-key", "OPENAI_BASE_URL": self.fake.base_url + "/v1",
               "ANTHROPIC_API_KEY": "ak-test-key", "ANTHROPIC_BASE_URL": self.fake.base_url}
        overrides = {"server.port": 0, "routing.default_provider": self.provider_kind,
                     **self.settings}
        toml = self.toml.replace("{fake}", self.fake.base_url) if self.toml else None
        self.server = Server(load_config(toml, env, overrides))
        await self.server.start()

    async def _stop(self) -> None:
        if self.server is not None:
            await self.server.close()
        if self.fake is not None:
            await self.fake.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def stats(self) -> dict[str, int]:
        assert self.fake is not None
        return httpx.get(self.fake.base_url + "/_fake/stats", timeout=5, verify=False).json()

    def reset_fake(self) -> None:
        assert self.fake is not None
        httpx.post(self.fake.base_url + "/_fake/reset", timeout=5, verify=False)

    def wait_for(self, predicate: Callable[[dict[str, int]], bool], timeout: float = 2.0
                 ) -> tuple[dict[str, int], float]:
        """Poll the fake's stats until ``predicate`` holds; returns them and the wait."""
        started = time.monotonic()
        while True:
            stats = self.stats()
            waited = time.monotonic() - started
            if predicate(stats) or waited > timeout:
                return stats, waited
            time.sleep(0.005)


def request_body(script: dict[str, Any] | None = None, text: str | None = None,
                 **fields: Any) -> dict[str, Any]:
    content = text if text is not None else "#fake " + orjson.dumps(script or {}).decode()
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}],
            **fields}
