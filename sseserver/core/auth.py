"""Who is calling and what they may do, decided without I/O and without a clock.

Three decisions, each a pure function or a small value the caller drives:

- :func:`identify_key`: which configured API key a presented secret is. Keys are
  stored as SHA-256 digests; the presented secret is hashed and compared with every
  digest by :func:`hmac.compare_digest`, with no early exit, so the time taken says
  nothing about which keys exist or how much of one matched.
- :func:`encode_token` / :func:`decode_token`: short-lived browser tokens, an
  HMAC-SHA256 over a compact JSON payload (key name, expiry, scope). ``now`` (Unix
  seconds) is an argument; a token is valid while ``now < expires``.
- :class:`TokenBucket`: requests per minute, refilled continuously; ``take(now)``
  says how long to wait, 0 when the request may go.
- :func:`admission`: whether a key's counted state (a spent token, streams at once,
  its bucket) lets one more request in, whichever store holds that state.

Token wire form: ``sst1.<payload>.<signature>``, both parts unpadded base64url; the
signature covers ``sst1.<payload>`` exactly as sent, and is compared as text, so no
byte of a token can change without the token being refused.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TOKEN_PREFIX = "sst1"  # the format's version: a new format gets a new prefix
# A token travels in a URL (?token=): with a long model name and a stream id it is
# ~250 characters; 2 KiB refuses junk before any hashing, far below URL limits (8 KiB).
MAX_TOKEN_CHARS = 2048
# A key is whatever its owner chose; 4 KiB bounds the hashing work of a bad request.
MAX_KEY_CHARS = 4096


class Scope(enum.Enum):
    CREATE = "create"  # start one generation
    SUBSCRIBE = "subscribe"  # read (or cancel) one stream, by its id


@dataclass(frozen=True, slots=True)
class KeyDigest:
    name: str
    digest: bytes  # SHA-256 of the key's UTF-8 bytes


@dataclass(frozen=True, slots=True)
class Grant:
    """What a signed token allows, on behalf of the API key ``key`` names."""

    key: str
    expires: int  # Unix seconds; valid while now < expires
    scope: Scope
    stream_id: str | None = None  # SUBSCRIBE: the one stream
    model: str | None = None  # CREATE: fixed, when set
    provider: str | None = None
    max_tokens: int | None = None  # CREATE: a ceiling, when set
    nonce: str = ""  # makes a CREATE token single-use


class TokenRefused(Exception):
    """A token that is malformed, forged, tampered with or expired. The message says
    which of these, never anything about the keys."""


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key, as ``[auth.keys]`` stores it."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def identify_key(keys: Sequence[KeyDigest], presented: str) -> str | None:
    """The name of the key ``presented`` is, or None.

    Every digest is compared, matched or not (no return or break inside the loop):
    the time taken depends on the number of keys only.
    """
    digest = hashlib.sha256(presented[:MAX_KEY_CHARS].encode("utf-8", "surrogatepass")
                            ).digest()
    found = None
    for key in keys:
        if hmac.compare_digest(key.digest, digest):
            found = key.name
    return found if len(presented) <= MAX_KEY_CHARS else None


def is_token(credential: str) -> bool:
    return credential.startswith(TOKEN_PREFIX + ".")


def encode_token(secret: bytes, grant: Grant) -> str:
    payload = {"k": grant.key, "e": grant.expires, "s": grant.scope.value,
               "i": grant.stream_id, "m": grant.model, "p": grant.provider,
               "t": grant.max_tokens, "n": grant.nonce or None}
    compact = {name: value for name, value in payload.items() if value is not None}
    body = _b64(json.dumps(compact, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{TOKEN_PREFIX}.{body}"
    return f"{signed}.{_signature(secret, signed)}"


def decode_token(secret: bytes | Sequence[bytes], token: str, now: float) -> Grant:
    """The grant of a token signed with ``secret`` (or any of several: a rotation
    keeps the old secret verifying beside the new one) and unexpired at ``now``.

    Raises :class:`TokenRefused`.
    """
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise TokenRefused("malformed token")
    signed, _, signature = token.rpartition(".")
    prefix, _, body = signed.partition(".")
    if prefix != TOKEN_PREFIX or not body:
        raise TokenRefused("malformed token")
    if not _signed_by_any((secret,) if isinstance(secret, bytes) else secret, signed,
                          signature):
        raise TokenRefused("invalid token signature")
    grant = _grant(_payload(body))
    if now >= grant.expires:
        raise TokenRefused("token expired")
    return grant


def _signed_by_any(secrets: Sequence[bytes], signed: str, signature: str) -> bool:
    """Every secret is tried, matched or not (as in :func:`identify_key`): the time
    taken says nothing about which secret signed."""
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(_signature(secret, signed).encode(), signature.encode())
    return matched


def _signature(secret: bytes, signed: str) -> str:
    return _b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(body: str) -> dict[str, Any]:
    # Signed by us, so well-formed unless the secret leaked; checked all the same.
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        raise TokenRefused("malformed token") from None
    if not isinstance(data, dict):
        raise TokenRefused("malformed token")
    return data


def _grant(data: dict[str, Any]) -> Grant:
    key, expires, scope = data.get("k"), data.get("e"), data.get("s")
    if not isinstance(key, str) or type(expires) is not int or \
            scope not in {s.value for s in Scope}:
        raise TokenRefused("malformed token")
    grant = Grant(key, expires, Scope(scope), stream_id=data.get("i"), model=data.get("m"),
                  provider=data.get("p"), max_tokens=data.get("t"), nonce=data.get("n") or "")
    texts = (grant.stream_id, grant.model, grant.provider)
    if not all(text is None or isinstance(text, str) for text in texts) or \
            not isinstance(grant.nonce, str) or \
            (grant.max_tokens is not None and type(grant.max_tokens) is not int) or \
            (grant.scope is Scope.SUBSCRIBE and not grant.stream_id):
        raise TokenRefused("malformed token")
    return grant


@dataclass(slots=True)
class TokenBucket:
    """``per_minute`` requests a minute, in bursts of at most ``per_minute``.

    Starts full; refills at ``per_minute / 60`` a second, so a client at the limit
    is never told to wait more than one request's share of a minute.
    """

    per_minute: int
    tokens: float = -1.0  # full at the first take
    updated: float = 0.0

    def take(self, now: float) -> float:
        """Spend one request: 0.0 if it may go, else the seconds until one can."""
        rate = self.per_minute / 60.0
        if self.tokens < 0:
            self.tokens = float(self.per_minute)
        else:
            self.tokens = min(float(self.per_minute),
                              self.tokens + max(0.0, now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate


def generation_refusal(grant: Grant | None, allowed_models: Sequence[str],
                       allowed_providers: Sequence[str], max_tokens_ceiling_of_key: int,
                       model: str, providers: Sequence[str], max_tokens: int | None
                       ) -> str | None:
    """Why a generation is out of a key's (and its token's) scope, or None.

    ``providers`` are those the model resolved to (a fallback chain names several).
    A missing ``max_tokens`` under a ceiling is refused too: the gateway fills it in
    first (:func:`sseserver.gate.with_max_tokens`), so only a route that forgot to
    meets this.
    """
    if allowed_models and model not in allowed_models:
        return f"model {model!r} is not allowed for this key"
    if allowed_providers and any(p not in allowed_providers for p in providers):
        return "a provider this request routes to is not allowed for this key"
    if grant is not None and grant.model is not None and model != grant.model:
        return f"this token allows model {grant.model!r} only"
    if grant is not None and grant.provider is not None and \
            any(p != grant.provider for p in providers):
        return f"this token allows provider {grant.provider!r} only"
    ceiling = max_tokens_ceiling(grant, max_tokens_ceiling_of_key)
    if ceiling is None:
        return None
    if max_tokens is None:
        return f"max_tokens must be set, at most {ceiling}"
    if max_tokens > ceiling:
        return f"max_tokens {max_tokens} is more than this key allows (at most {ceiling})"
    return None


def max_tokens_ceiling(grant: Grant | None, key_ceiling: int) -> int | None:
    """The lower of a key's ``max_tokens`` ceiling (0: none) and its token's."""
    ceilings = [c for c in (key_ceiling or None, grant.max_tokens if grant else None)
                if c is not None]
    return min(ceilings) if ceilings else None


# Seconds a client over its concurrency limit is told to wait: streams last seconds to
# minutes, so a second is the shortest wait likely to find one ended.
CONCURRENCY_RETRY_AFTER = 1.0


class Outcome(enum.Enum):
    ADMITTED = "admitted"
    TOKEN_SPENT = "token_spent"  # a create token that started its generation already
    TOO_MANY_STREAMS = "too_many_streams"
    RATE_LIMITED = "rate_limited"
    NO_ROOM = "no_room"  # the shared table has no room for one more token or key name


def admission(*, spent: bool, stream: bool, active: int, max_streams: int,
              bucket: TokenBucket | None, now: float) -> tuple[Outcome, float]:
    """The outcome for one request of a key, and the seconds to wait when refused.

    ``stream``: the request starts a generation (the concurrency limit applies);
    ``bucket`` is taken from (the caller keeps or drops what it spent).
    """
    if spent:
        return Outcome.TOKEN_SPENT, 0.0
    if stream and max_streams and active >= max_streams:
        return Outcome.TOO_MANY_STREAMS, CONCURRENCY_RETRY_AFTER
    if bucket is not None:
        wait = bucket.take(now)
        if wait > 0:
            return Outcome.RATE_LIMITED, wait
    return Outcome.ADMITTED, 0.0
