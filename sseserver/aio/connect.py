"""Where an upstream URL points, and a connection to it: plain TCP or TLS, with the
connect timeout, giving an :class:`~sseserver.aio.upstream.UpstreamConnection` (the
pool opens its connections here; :func:`open_upstream` also sends one request)."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sseserver.aio.upstream import Timeouts, UpstreamConnection
from sseserver.aio.wheel import TimerWheel, wheel_for
from sseserver.errors import UpstreamConnectError, UpstreamTimeout


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL points: the origin to connect to and the request target."""

    scheme: str
    host: str
    port: int
    path: str  # request target: path and query
    authority: str  # the Host header
    # scheme://authority, the pool's key: built once with the (cached) target, not at
    # each of a stream's look-ups
    origin: str


@functools.lru_cache(maxsize=256)
def parse_url(url: str) -> Target:
    """Raises :class:`UpstreamConnectError` for a URL we cannot connect to.

    Cached: a gateway sends every request of a provider to the same few URLs, and
    splitting one costs more than encoding the whole request."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # the URL is not quoted: it may carry credentials
        raise UpstreamConnectError("unsupported upstream URL: http:// or https:// and a host "
                                   "are needed", retryable=False)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authority = parts.netloc.rpartition("@")[2]
    return Target(parts.scheme, parts.hostname, port, path, authority,
                  f"{parts.scheme}://{authority}")


async def connect(target: Target, timeouts: Timeouts,
                  ssl_context: ssl.SSLContext | None = None) -> UpstreamConnection:
    """Open a connection to ``target``'s origin (TLS for https, verified).

    Raises :class:`UpstreamConnectError` or :class:`UpstreamTimeout`.
    """
    loop = asyncio.get_running_loop()
    tls = target.scheme == "https"
    context = (ssl_context or ssl.create_default_context()) if tls else None
    # The limit on the loop's wheel, not asyncio.timeout (a loop timer, a context
    # manager's four calls): a deadline that cancels this task, as asyncio.timeout does.
    wheel = wheel_for(loop)
    limit = _ConnectLimit(loop, wheel, timeouts.connect)
    try:
        # the protocol made by a partial, not a lambda: no Python frame of its own
        _, conn = await loop.create_connection(
            functools.partial(UpstreamConnection, timeouts, loop, target.origin, wheel),
            target.host, target.port, ssl=context, server_hostname=target.host if tls else None)
    except asyncio.CancelledError:
        limit.cancel()
        if limit.expired():
            raise UpstreamTimeout(f"connecting to {target.authority} took longer than "
                                  f"{timeouts.connect:g} s") from None
        raise
    except BaseException as exc:
        limit.cancel()
        if isinstance(exc, OSError):  # ssl.SSLError (a bad certificate) is one too
            raise UpstreamConnectError(f"cannot connect to {target.authority}: "
                                       f"{exc}") from None
        raise
    limit.hand_over(conn)
    return conn


class _ConnectLimit:
    """Cancels the connecting task when the connect timeout passes (on the loop's
    wheel: never early, at most a tick late). :meth:`expired` tells, on the
    cancellation, whether it was this limit's, as ``asyncio.timeout`` tells it: a
    cancellation from elsewhere (the stream given up) stays a cancellation."""

    __slots__ = ("_cancelling", "_deadline", "_fired", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, wheel: TimerWheel,
                 delay: float) -> None:
        task = asyncio.current_task(loop)
        assert task is not None, "a connection is opened in a task"
        self._task = task
        self._cancelling = task.cancelling()
        self._fired = False
        self._deadline = wheel.call_later(delay, self._expire)

    def _expire(self) -> None:
        if not self._task.done():
            self._fired = True
            self._task.cancel()

    def expired(self) -> bool:
        """Whether the cancellation being handled is this limit's (and only its)."""
        return self._fired and self._task.uncancel() <= self._cancelling

    def cancel(self) -> None:
        self._deadline.cancel()

    def hand_over(self, conn: UpstreamConnection) -> None:
        """Connected: the limit's deadline, still pending, becomes the connection's
        first check (due no later than the connect limit, it is early for any limit
        of the request, and a check that comes early measures and is set again): the
        request then sets no deadline of its own when its limits are longer."""
        if self._fired:  # fired as the connection came: taken back, as asyncio.timeout
            self._task.uncancel()  # does (the cancellation itself stays pending)
        conn.adopt_check(self._deadline)


async def open_upstream(
    url: str, method: str, headers: Sequence[tuple[str, str]], body: bytes,
    timeouts: Timeouts, ssl_context: ssl.SSLContext | None = None,
) -> UpstreamConnection:
    """Connect to ``url``'s origin on a new connection and send the request.

    Raises :class:`UpstreamConnectError` or :class:`UpstreamTimeout`.
    """
    target = parse_url(url)
    conn = await connect(target, timeouts, ssl_context)
    conn.send_request(method, target.path, target.authority, headers, body)
    return conn
