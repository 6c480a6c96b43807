"""CORS, sans-IO: the headers a response carries for a request's ``Origin``, and what a
preflight answers (Fetch standard §3.2, "CORS protocol").

The rules, and why:

- ``Vary: Origin`` goes on every response once any origin is configured: whether a
  response carries ``Access-Control-Allow-Origin`` (and which value, and whether
  credentials are allowed) depends on the request's ``Origin``, also for a request
  with none, so a shared cache must not hand one origin's answer to another
  (Fetch §3.2.5 note on ``Vary``).
- ``Access-Control-Allow-Credentials`` only when configured, and only to a listed
  origin, never with ``*`` (Fetch forbids it). The gateway authenticates nobody by
  cookie, so by default a browser's ambient credentials have nothing to unlock.
- A preflight reflects the header names it is asked for (SDKs send their own, e.g. the
  OpenAI JS SDK's ``x-stainless-*``), but only names that are RFC 9110 tokens, at most
  MAX_REQUESTED_NAMES of them in MAX_REQUESTED_BYTES; anything else is refused with
  400, since a browser only ever asks for token names. With credentials, names of the
  credential class (CREDENTIAL_HEADERS) are allowed only when configured by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sseserver.core.http_fields import TOKEN

# Response headers a page's script may read (besides the CORS-safelisted ones).
EXPOSED_HEADERS = "x-stream-id, location, retry-after"
# What fetch and EventSource clients send: JSON bodies, keys, resume positions.
ALLOWED_REQUEST_HEADERS = ("content-type", "authorization", "last-event-id")
# Names that carry a user's credentials: with credentials allowed, a page may send them
# only when the operator lists them (server.cors_allow_headers).
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie",
                                "cookie2", "x-api-key", "api-key"})
# Browsers ask for the non-safelisted names a script set; an SDK sets about a dozen.
# Beyond this the list is not a browser's, and reflecting it would only grow the answer.
MAX_REQUESTED_NAMES = 64
# ... and their list is a few hundred bytes; this bounds what an answer can reflect.
MAX_REQUESTED_BYTES = 2048
PREFLIGHT_MAX_AGE = "600"  # s; Chromium caps a preflight's cache at 2 h, Firefox at 24 h

_TOKEN = re.compile(TOKEN)
_VARY = ("vary", "origin")


class PreflightRefused(ValueError):
    """A preflight whose Access-Control-Request-Headers is not a list of names."""


@dataclass(frozen=True, slots=True)
class CORSPolicy:
    origins: frozenset[str] = frozenset()  # exact serialized origins
    any_origin: bool = False  # "*" was configured
    credentials: bool = False
    allow_headers: frozenset[str] = frozenset()  # lower-case names always allowed

    @classmethod
    def from_settings(cls, origins: tuple[str, ...], credentials: bool,
                      allow_headers: tuple[str, ...]) -> CORSPolicy:
        return cls(frozenset(o for o in origins if o != "*"), "*" in origins, credentials,
                   frozenset(name.lower() for name in allow_headers))

    @property
    def enabled(self) -> bool:
        return bool(self.origins) or self.any_origin

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (origin in self.origins or self.any_origin)


def response_headers(policy: CORSPolicy, origin: str | None) -> list[tuple[str, str]]:
    """The CORS headers of any response to a request with this ``Origin`` (or none)."""
    if not policy.enabled:
        return []
    if origin is not None and origin in policy.origins:
        headers = [("access-control-allow-origin", origin), _VARY]
        if policy.credentials:
            headers.append(("access-control-allow-credentials", "true"))
        headers.append(("access-control-expose-headers", EXPOSED_HEADERS))
        return headers
    if origin is not None and policy.any_origin:
        return [("access-control-allow-origin", "*"), _VARY,
                ("access-control-expose-headers", EXPOSED_HEADERS)]
    return [_VARY]


def allowed_request_headers(policy: CORSPolicy, requested: str) -> str:
    """The ``Access-Control-Allow-Headers`` value answering ``requested`` (the
    preflight's ``Access-Control-Request-Headers``).

    Raises :class:`PreflightRefused` for a name that is not a token, or too many names.
    """
    names = [name.strip(" \t").lower() for name in requested.split(",")]
    names = [name for name in names if name]
    if len(names) > MAX_REQUESTED_NAMES or len(requested) > MAX_REQUESTED_BYTES:
        raise PreflightRefused(f"Access-Control-Request-Headers names more than "
                               f"{MAX_REQUESTED_NAMES} headers or {MAX_REQUESTED_BYTES} bytes")
    for name in names:
        if _TOKEN.fullmatch(name) is None:
            raise PreflightRefused(f"Access-Control-Request-Headers: {name[:40]!r} is not "
                                   "a header name")
    allowed = {*ALLOWED_REQUEST_HEADERS, *names}
    if policy.credentials:  # a credential name with credentials: only when listed
        allowed -= CREDENTIAL_HEADERS - policy.allow_headers
    return ", ".join(sorted(allowed | policy.allow_headers))
