"""The embeddable server: bind, serve, drain.

    async with sseserver.Server(config) as server:   # binds; port 0 picks a free port
        print(server.port)
        await server.serve_forever()

With ``config.server.demo`` the fake provider runs in-process on loopback and every
model is routed to it through the real upstream client. As one worker of ``--workers
N`` (``worker``), it serves with the others as one server (peers.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import TracebackType
from typing import Any

from sseserver.aio.admission import (
    Admission,
    AdmittedConnection,
    accept_error_handler,
    default_max_connections,
    open_file_limit,
    refusal_log,
)
from sseserver.aio.handoff import AdoptedConnection
from sseserver.aio.worker_channel import WorkerPlace
from sseserver.auth_settings import exposure_error
from sseserver.config import Config, ProviderSettings
from sseserver.errors import ConfigError
from sseserver.fake import FakeProvider
from sseserver.gateway import Gateway
from sseserver.peers import Peers
from sseserver.providers.base import Provider
from sseserver.providers.registry import make_provider

logger = logging.getLogger("sseserver")

DEMO_PROVIDER = "demo"


class Server:
    """An sseserver bound to a socket. Use as an async context manager."""

    def __init__(self, config: Config | None = None, *, sock: socket.socket | None = None,
                 worker: WorkerPlace | None = None) -> None:
        self.config = config or Config()
        self._sock = sock
        self._worker = worker
        self.peers: Peers | None = None
        self._adoptions: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._fake: FakeProvider | None = None
        self.gateway: Gateway | None = None
        self.admission: Admission | None = None
        self._previous_handler: Any = None
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Server {self.host}:{self.port} gateway={self.gateway!r}>"

    @property
    def host(self) -> str:
        return self.config.server.host

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        if self._server is None or not self._server.sockets:
            return self.config.server.port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start accepting. Raises OSError if the address is taken,
        :class:`ConfigError` for a non-loopback address with no [auth] keys (unless
        ``server.allow_unauthenticated``) or an unreadable keys file."""
        settings = self.config.server
        refused = exposure_error(settings.host, self.config.auth,
                                 settings.allow_unauthenticated)
        if refused is not None and self._sock is None:
            raise ConfigError(refused)
        providers = await self._providers()
        gateway = Gateway(self.config, providers)
        self.gateway = gateway
        limits = self.config.limits
        loop = asyncio.get_running_loop()
        admission = self.admission = self._admission(loop)
        # bound once: every connection is handed them
        handle, on_error, admit_head = gateway.handle, gateway.on_protocol_error, \
            gateway.admit_head

        def factory() -> AdmittedConnection:
            return AdmittedConnection(admission, handle, limits, on_error, loop, admit_head)

        server = self.config.server
        if self._sock is not None:
            self._server = await loop.create_server(factory, sock=self._sock,
                                                    backlog=server.backlog)
        else:
            self._server = await loop.create_server(
                factory, server.host, server.port, backlog=server.backlog,
                reuse_address=True, reuse_port=server.workers > 1)
        logger.info("sseserver listening on %s (providers: %s)", self.url,
                    ", ".join(sorted(providers)) or "none")
        gateway.log_routing()
        if self._worker is not None:  # now that it listens, the others may send to it
            self.peers = gateway.peers = Peers(self._worker, gateway, self._adopt)

    def _adopt(self, fd: int, first_input: bytes) -> None:
        """Serve a connection another worker accepted and read ``first_input`` from."""
        task = asyncio.get_running_loop().create_task(self._serve_adopted(fd, first_input))
        self._adoptions.add(task)
        task.add_done_callback(self._adoptions.discard)

    async def _serve_adopted(self, fd: int, first_input: bytes) -> None:
        gateway, admission = self.gateway, self.admission
        loop = asyncio.get_running_loop()
        sock = socket.socket(fileno=fd)
        if gateway is None or admission is None:  # closed meanwhile
            sock.close()
            return
        limits = self.config.limits

        def factory() -> AdoptedConnection:
            return AdoptedConnection(first_input, admission, gateway.handle, limits,
                                     gateway.on_protocol_error, loop, gateway.admit_head)

        try:
            await loop.connect_accepted_socket(factory, sock)
        except OSError as exc:  # the client left while it was handed over
            logger.debug("cannot serve a handed-over connection: %s", exc)
            sock.close()

    def _admission(self, loop: asyncio.AbstractEventLoop) -> Admission:
        """Connection limits, and the log of accepts failing for lack of descriptors."""
        settings = self.config.server
        fd_limit = open_file_limit()
        log = refusal_log(loop.time)
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(accept_error_handler(log, self._previous_handler))
        return Admission(settings.max_client_connections or default_max_connections(fd_limit),
                         settings.max_connections_per_address, fd_limit, log)

    async def _providers(self) -> dict[str, Provider]:
        if self.config.server.demo:
            self._fake = FakeProvider("127.0.0.1", 0)
            await self._fake.start()
            settings = ProviderSettings(DEMO_PROVIDER, "openai", self._fake.base_url + "/v1",
                                        "demo-key")
            return {DEMO_PROVIDER: make_provider(settings)}
        return {p.name: make_provider(p) for p in self.config.providers}

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` (or a drain) finishes."""
        await self._closed.wait()

    async def drain(self, timeout: float | None = None) -> None:
        """Stop accepting, report not-ready, let streams finish, then end the rest.

        Streams still running after ``timeout`` (default: the configured drain
        timeout) end with a retryable ``error`` event and the end frame.
        """
        gateway = self.gateway
        if gateway is None:
            return
        gateway.draining = True
        if self._server is not None:
            self._server.close()
        deadline = asyncio.get_running_loop().time() + (
            self.config.streams.drain_timeout if timeout is None else timeout)
        while gateway.relays and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for relay in list(gateway.relays):
            relay.shutdown("server is shutting down; retry the request")
        await self.close()

    async def close(self) -> None:
        if self.admission is not None:
            asyncio.get_running_loop().set_exception_handler(self._previous_handler)
            self.admission = None
        if self._server is not None:
            self._server.close()
            if hasattr(self._server, "close_clients"):
                self._server.close_clients()
        if self.peers is not None:
            self.peers.close()
            self.peers = None
        if self.gateway is not None:
            for relay in list(self.gateway.relays):
                relay.shutdown("server closed")
            self.gateway.pool.close()
            await self.gateway.store.close()
        if self._fake is not None:
            await self._fake.close()
            self._fake = None
        self._closed.set()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()
