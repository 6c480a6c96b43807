"""The gate: one check per request, and the per-key state behind it.

:meth:`Gate.check` takes what a request presents (the credential from
``Authorization: Bearer``, ``x-api-key`` or ``?token=``), what the route needs and
the wall-clock ``now``, and returns the :class:`Caller` or a :class:`Refusal` the
gateway answers in the endpoint's error shape. The decisions themselves are in
:mod:`sseserver.core.auth`; this holds the state they act on (token buckets, streams
per key, spent create tokens in its :class:`~sseserver.key_ledger.Ledger`; the
per-key counters) and reads no clock.

A request that starts a generation holds its stream and its create token from the
check on (:class:`Hold`), so that two requests checked at once, in one process or in
two workers, cannot both take the last stream or both spend one token; the gateway
gives the hold back when the request starts no stream after all.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sseserver.auth_settings import AuthSettings, KeySettings, all_keys
from sseserver.core.auth import (
    Grant,
    KeyDigest,
    Outcome,
    Scope,
    TokenRefused,
    decode_token,
    generation_refusal,
    identify_key,
    is_token,
    max_tokens_ceiling,
)
from sseserver.errors import ConfigError
from sseserver.key_ledger import Ledger, LocalLedger
from sseserver.schema import GenerationRequest
from sseserver.shared_ledger import shared_ledger

logger = logging.getLogger("sseserver.auth")

BEARER = "bearer "
WWW_AUTHENTICATE = ("www-authenticate", 'Bearer realm="sseserver"')


class Need(enum.Enum):
    """What a route asks of its caller."""

    NOTHING = "nothing"  # open to all
    CREATE = "create"  # starts a generation: a key, or a create token
    SUBSCRIBE = "subscribe"  # one stream by id: a key, or a subscribe token for it
    ANY = "any"  # a key or any token (e.g. /v1/models)
    KEY = "key"  # an API key, no token (/metrics when it is closed)


@dataclass(slots=True)
class Hold:
    """What a request that may start a generation took at its check."""

    stream: bool  # one of the key's streams
    nonce: str  # its create token, spent ('' without one)
    settled: bool = False  # the stream started, or the hold was given back


@dataclass(frozen=True, slots=True)
class Caller:
    key: str  # the key's name; the key itself is never kept
    grant: Grant | None = None  # set when the caller came with a token
    hold: Hold | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    error_type: str
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class KeyCounters:
    streams: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    refusals: int = 0


def _unauthenticated(message: str) -> Refusal:
    return Refusal(401, message, "authentication_error", [WWW_AUTHENTICATE])


class Gate:
    """Authentication and per-key limits for one server process."""

    def __init__(self, settings: AuthSettings) -> None:
        """Raises :class:`ConfigError` when the keys file cannot be read."""
        self.settings = settings
        self.enabled = settings.enabled
        self._secrets = tuple(secret.encode() for secret in settings.token_secret)
        self.keys: Mapping[str, KeySettings] = {}
        self._digests: tuple[KeyDigest, ...] = ()
        # the workers' shared table when forked by --workers, else this process's own
        self.ledger: Ledger = shared_ledger() or LocalLedger()
        self.counters: dict[str, KeyCounters] = {}
        self.failures = 0  # refusals of no known key (401)
        self._install(all_keys(settings))

    def __repr__(self) -> str:
        return (f"<Gate enabled={self.enabled} keys={sorted(self.keys)} "
                f"ledger={self.ledger!r} failures={self.failures}>")

    def _install(self, keys: Mapping[str, KeySettings]) -> None:
        self.keys = keys
        self._digests = tuple(KeyDigest(k.name, bytes.fromhex(k.hash)) for k in keys.values())
        self.ledger.install(keys)
        for name in keys:
            self.counters.setdefault(name, KeyCounters())

    def reload(self) -> None:
        """Read the keys file again (SIGHUP). Keeps the old keys if it is bad."""
        try:
            keys = all_keys(self.settings)
        except ConfigError as exc:
            logger.error("keys not reloaded, the old ones stay: %s", exc)
            return
        self._install(keys)
        logger.info("keys reloaded: %d configured", len(keys))

    # -- the check -----------------------------------------------------------------

    def check(self, credential: str | None, need: Need, stream_id: str, now: float, *,
              take: bool = True) -> Caller | Refusal | None:
        """The caller, a refusal, or None for a route open to all.

        With ``take`` a CREATE caller holds a stream and spends its create token (see
        :meth:`stream_started`, :meth:`release_unstarted`); without, the check only
        looks (a request head, its body not read yet) and nothing is spent."""
        if not self.enabled or need is Need.NOTHING:
            return None
        if not credential:
            return self._fail(_unauthenticated("an API key or token is required"))
        if is_token(credential):
            caller = self._token_caller(credential, now)
        else:
            name = identify_key(self._digests, credential)
            caller = Caller(name) if name else _unauthenticated("invalid API key")
        if isinstance(caller, Refusal):
            return self._fail(caller)
        result = self._scope_refusal(caller, need, stream_id) or self._admit(
            caller, need, now, take)
        if isinstance(result, Refusal):
            self.counters[caller.key].refusals += 1
        return result

    def _fail(self, refusal: Refusal) -> Refusal:
        self.failures += 1
        return refusal

    def _token_caller(self, token: str, now: float) -> Caller | Refusal:
        if not self._secrets:
            return _unauthenticated("tokens are not accepted: auth.token_secret is not set")
        try:
            grant = decode_token(self._secrets, token, now)
        except TokenRefused as exc:
            return _unauthenticated(str(exc))
        if grant.key not in self.keys or grant.expires - now > self.settings.max_token_ttl:
            return _unauthenticated("token not accepted")
        return Caller(grant.key, grant)

    def _scope_refusal(self, caller: Caller, need: Need, stream_id: str) -> Refusal | None:
        grant = caller.grant
        if grant is None:
            return None
        if need is Need.KEY:
            return Refusal(403, "this route needs an API key, not a token", "permission_error")
        if need is Need.CREATE and grant.scope is not Scope.CREATE:
            return Refusal(403, "this token may not start a generation", "permission_error")
        if need is Need.SUBSCRIBE and (grant.scope is not Scope.SUBSCRIBE or
                                       grant.stream_id != stream_id):
            return Refusal(403, "this token is not for this stream", "permission_error")
        return None

    def _admit(self, caller: Caller, need: Need, now: float, take: bool) -> Caller | Refusal:
        """The key's counted limits: a spent token, streams at once, requests a minute."""
        key, grant, stream = self.keys[caller.key], caller.grant, need is Need.CREATE
        nonce = grant.nonce if stream and grant is not None else ""
        outcome, wait = self.ledger.admit(key, stream, nonce, grant.expires if grant else 0,
                                          now, take)
        if outcome is not Outcome.ADMITTED:
            return _LIMIT_REFUSALS[outcome](key, wait)
        return replace(caller, hold=Hold(stream, nonce)) if take and stream else caller

    def check_generation(self, caller: Caller | None, model: str, providers: Sequence[str],
                         max_tokens: int | None) -> Refusal | None:
        """403 when a generation is outside the caller's key or token."""
        if caller is None:
            return None
        key = self.keys.get(caller.key)
        if key is None:  # removed by a reload since the check
            return _unauthenticated("invalid API key")
        why = generation_refusal(caller.grant, key.models, key.providers, key.max_tokens,
                                 model, providers, max_tokens)
        if why is None:
            return None
        self.counters[caller.key].refusals += 1
        return Refusal(403, why, "permission_error")

    def max_tokens_ceiling(self, caller: Caller | None) -> int | None:
        """The most ``max_tokens`` the caller's key and token allow, None for no limit."""
        key = self.keys.get(caller.key) if caller is not None else None
        if caller is None or key is None:
            return None
        return max_tokens_ceiling(caller.grant, key.max_tokens)

    # -- streams -------------------------------------------------------------------

    def stream_started(self, caller: Caller, now: float) -> None:
        """The caller's generation started: what it holds is kept until it ends."""
        name, hold = caller.key, caller.hold
        if hold is None:  # checked without a hold: counted from now
            self.ledger.stream_added(name)
        else:
            hold.settled = True
        self.counters.setdefault(name, KeyCounters()).streams += 1

    def release_unstarted(self, caller: Caller) -> None:
        """The request is answered: give back what it held unless a stream started
        (a refused body, a model out of scope, no room), so its token stays unspent."""
        hold = caller.hold
        if hold is not None and not hold.settled:
            hold.settled = True
            self.ledger.give_back(caller.key, hold.stream, hold.nonce)

    def stream_ended(self, name: str, input_tokens: int, output_tokens: int) -> None:
        self.ledger.stream_ended(name)
        counters = self.counters.setdefault(name, KeyCounters())
        counters.input_tokens += input_tokens
        counters.output_tokens += output_tokens


# Where each compatible API's body states its limit: a provider of the same wire gets
# the body as sent, so the ceiling has to be in it (OpenAI's current name; the
# Anthropic Messages API requires max_tokens, so its requests never lack one).
NATIVE_LIMIT_FIELDS = {"openai": "max_completion_tokens", "anthropic": "max_tokens"}


def with_max_tokens(generation: GenerationRequest, ceiling: int | None) -> GenerationRequest:
    """A generation that states no ``max_tokens`` under a ceiling gets the ceiling: the
    most its key may spend, where the provider's default (up to the model's whole
    output) would bypass it. One that states more is refused (403) by
    :meth:`Gate.check_generation`, not lowered: the client asked for that length, and
    an answer cut short without a word would look like the model's choice."""
    if ceiling is None or generation.max_tokens is not None:
        return generation
    native = generation.native
    if native is not None:
        field_name = NATIVE_LIMIT_FIELDS.get(native.format, "max_tokens")
        native = replace(native, body={**native.body, field_name: ceiling})
    return replace(generation, max_tokens=ceiling, native=native)


def _retry_after(wait: float) -> list[tuple[str, str]]:
    return [("retry-after", str(max(1, math.ceil(round(wait, 6)))))]


_LIMIT_REFUSALS: dict[Outcome, Callable[[KeySettings, float], Refusal]] = {
    Outcome.TOKEN_SPENT: lambda key, wait: Refusal(
        403, "this token was used already", "permission_error"),
    Outcome.TOO_MANY_STREAMS: lambda key, wait: Refusal(
        429, f"too many streams at once for this key (at most {key.max_streams})",
        "rate_limit_error", _retry_after(wait)),
    Outcome.RATE_LIMITED: lambda key, wait: Refusal(
        429, f"too many requests for this key (at most {key.requests_per_minute} a "
        "minute)", "rate_limit_error", _retry_after(wait)),
    Outcome.NO_ROOM: lambda key, wait: Refusal(
        503, "the server is counting too many tokens at once; retry shortly",
        "unavailable", _retry_after(wait)),
}


def credential_of(headers: Mapping[str, str], query: str) -> str | None:
    """The credential a request presents: ``Authorization: Bearer``, ``x-api-key``,
    or a token in ``?token=`` (EventSource sets no headers; API keys never go there)."""
    authorization = headers.get("authorization", "")
    if authorization[:len(BEARER)].lower() == BEARER:
        return authorization[len(BEARER):].strip()
    api_key = headers.get("x-api-key")
    if api_key:
        return api_key.strip()
    if "token=" in query:
        from urllib.parse import parse_qs

        token = parse_qs(query).get("token", [""])[0]
        return token if is_token(token) else None
    return None


def metrics_lines(gate: Gate) -> list[str]:
    """The per-key counters in Prometheus text; label values are configured key names
    (checked against a safe pattern when loaded), so their number is bounded."""
    if not gate.enabled:
        return []
    rows = sorted(gate.counters.items())
    lines = ["# HELP sseserver_auth_failures_total Requests refused for a missing, wrong, "
             "expired or forged credential (401).",
             "# TYPE sseserver_auth_failures_total counter",
             f"sseserver_auth_failures_total {gate.failures}"]
    for metric, kind, help_text, value in (
            ("key_streams_active", "gauge", "Generations in progress, by key.",
             lambda name, c: gate.ledger.active(name)),
            ("key_streams_total", "counter", "Generations started, by key.",
             lambda name, c: c.streams),
            ("key_input_tokens_total", "counter", "Usage: input tokens, by key.",
             lambda name, c: c.input_tokens),
            ("key_output_tokens_total", "counter", "Usage: output tokens, by key.",
             lambda name, c: c.output_tokens),
            ("key_refusals_total", "counter", "Requests of a known key refused (403, 429).",
             lambda name, c: c.refusals)):
        lines += [f"# HELP sseserver_{metric} {help_text}", f"# TYPE sseserver_{metric} {kind}"]
        lines += [f'sseserver_{metric}{{key="{name}"}} {value(name, c)}' for name, c in rows]
    return lines
