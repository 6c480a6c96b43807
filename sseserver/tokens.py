"""Minting browser tokens: what an app's backend calls, then hands to its page.

    token = sseserver.mint_token(secret, "web-app", ttl=300, model="gpt-4o-mini",
                                 max_tokens=1024)             # one generation
    token = sseserver.mint_token(secret, "web-app", stream_id=stream_id)  # one stream

``secret`` is the server's ``auth.token_secret``; ``key`` names the configured API
key whose limits and accounting the token's requests count against.
"""

from __future__ import annotations

import math
import secrets
import time

from sseserver.core.auth import Grant, Scope, encode_token

# A browser token should outlive the page's request for it by a little, no more.
DEFAULT_TOKEN_TTL = 300.0
NONCE_BYTES = 12  # 96 random bits: never repeats across the tokens of a key's lifetime


def mint_token(secret: str, key: str, *, ttl: float = DEFAULT_TOKEN_TTL,
               stream_id: str | None = None, model: str | None = None,
               provider: str | None = None, max_tokens: int | None = None,
               now: float | None = None) -> str:
    """A signed token for the key named ``key``, valid ``ttl`` seconds from ``now``
    (default: the current time).

    With ``stream_id`` it may subscribe to (or cancel) that stream only; without, it
    may start one generation, of ``model`` / ``provider`` when given, with at most
    ``max_tokens``. Raises ValueError for a subscribe token that fixes a model.
    """
    if not secret:
        raise ValueError("a token secret is required (auth.token_secret)")
    if stream_id is not None and (model or provider or max_tokens is not None):
        raise ValueError("a subscribe token (stream_id) fixes no model, provider or "
                         "max_tokens")
    issued = time.time() if now is None else now
    expires = math.floor(issued + ttl)
    if stream_id is not None:
        grant = Grant(key, expires, Scope.SUBSCRIBE, stream_id=stream_id)
    else:
        grant = Grant(key, expires, Scope.CREATE, model=model, provider=provider,
                      max_tokens=max_tokens, nonce=secrets.token_urlsafe(NONCE_BYTES))
    return encode_token(secret.encode(), grant)
