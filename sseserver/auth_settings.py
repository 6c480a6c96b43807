"""The ``[auth]`` settings: named API keys (stored as SHA-256 digests) with their
limits, the token secret, and which routes stay open. See docs/config.example.toml.

A key table, inline as ``[auth.keys.NAME]`` or in ``auth.keys_file`` as
``[keys.NAME]``::

    hash = "<sha256 hex of the key: sseserver keys hash>"
    max_streams = 10            # generations at once; 0 = no limit
    requests_per_minute = 120   # 0 = no limit
    models = ["gpt-4o-mini"]    # empty = any
    providers = []              # empty = any
    max_tokens = 4096           # a ceiling: filled in when missing, 403 above; 0 = none
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sseserver.errors import ConfigError

SUBSCRIBE_POLICIES = ("open", "token")  # "open": a stream's 128-bit id is its capability
METRICS_POLICIES = ("open", "key")
# HMAC-SHA256 takes a 256-bit key; a shorter secret is guessable offline from one token.
MIN_TOKEN_SECRET_CHARS = 32
# A token is a bearer credential in a browser: an hour bounds the harm of one that
# leaks, and the memory that keeps used create tokens from being replayed.
DEFAULT_MAX_TOKEN_TTL = 3600.0
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # safe as a metrics label value
_KEY_FIELDS = frozenset({"hash", "max_streams", "requests_per_minute", "models",
                         "providers", "max_tokens"})


@dataclass(frozen=True, slots=True)
class KeySettings:
    name: str
    hash: str  # hex SHA-256 of the key
    max_streams: int = 0
    requests_per_minute: int = 0
    models: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    max_tokens: int = 0


@dataclass(frozen=True, slots=True)
class AuthSettings:
    keys: Mapping[str, KeySettings] = field(default_factory=lambda: MappingProxyType({}))
    keys_file: str | None = None  # TOML of [keys.NAME] tables; reloaded on SIGHUP
    # Signs browser tokens: the first signs, every one verifies, so a new secret goes
    # first and the old one stays until the tokens it signed have expired. Set it from
    # the environment (comma-separated there).
    token_secret: tuple[str, ...] = ()
    subscribe: str = "open"
    metrics: str = "open"
    max_token_ttl: float = DEFAULT_MAX_TOKEN_TTL

    def __repr__(self) -> str:  # never show the secret
        return (f"AuthSettings(keys={sorted(self.keys)}, keys_file={self.keys_file!r}, "
                f"subscribe={self.subscribe!r}, metrics={self.metrics!r})")

    @property
    def enabled(self) -> bool:
        """Whether requests must authenticate: any key is configured, here or in a file."""
        return bool(self.keys) or self.keys_file is not None


def parse_keys(where: str, tables: Any) -> Mapping[str, KeySettings]:
    """``{name: table}`` to key settings. Raises :class:`ConfigError` naming the key."""
    if not isinstance(tables, dict):
        raise ConfigError(f"{where} must hold one table per key")
    return MappingProxyType({name: _key(f"{where}.{name}", name, table)
                             for name, table in tables.items()})


def _key(where: str, name: str, table: Any) -> KeySettings:
    if not _KEY_NAME.fullmatch(name):
        raise ConfigError(f"{where}: a key name is 1-64 letters, digits, '_', '.' or '-'")
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - _KEY_FIELDS
    if unknown:
        raise ConfigError(f"unknown setting '{where}.{sorted(unknown)[0]}'")
    digest = table.get("hash")
    if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest.lower()):
        raise ConfigError(f"{where}.hash: must be the 64 hex digits of a SHA-256 "
                          "(sseserver keys hash prints it)")
    values: dict[str, Any] = {}
    for setting in ("max_streams", "requests_per_minute", "max_tokens"):
        value = table.get(setting, 0)
        if type(value) is not int or value < 0:
            raise ConfigError(f"{where}.{setting}: must be a non-negative integer")
        values[setting] = value
    for setting in ("models", "providers"):
        names = table.get(setting, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}.{setting}: must be a list of strings")
        values[setting] = tuple(names)
    return KeySettings(name, digest.lower(), **values)


def load_keys_file(path: str) -> Mapping[str, KeySettings]:
    """The ``[keys.NAME]`` tables of a keys file. Raises :class:`ConfigError`."""
    try:
        with open(path, encoding="utf-8") as file:
            data = tomllib.loads(file.read())
    except OSError as exc:
        raise ConfigError(f"cannot read keys file {path!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"keys file {path!r} is not valid TOML: {exc}") from None
    unknown = set(data) - {"keys"}
    if unknown:
        raise ConfigError(f"keys file {path!r}: unknown table [{sorted(unknown)[0]}]")
    return parse_keys("keys", data.get("keys", {}))


def all_keys(settings: AuthSettings) -> Mapping[str, KeySettings]:
    """The inline keys and the keys file's. Raises :class:`ConfigError`, also when a
    name is in both."""
    if settings.keys_file is None:
        return settings.keys
    from_file = load_keys_file(settings.keys_file)
    both = set(settings.keys) & set(from_file)
    if both:
        raise ConfigError(f"key {sorted(both)[0]!r} is both in [auth.keys] and in "
                          f"{settings.keys_file!r}")
    return MappingProxyType({**settings.keys, **from_file})


def validate_auth(auth: AuthSettings) -> None:
    if auth.subscribe not in SUBSCRIBE_POLICIES:
        raise ConfigError(f"auth.subscribe: must be one of {', '.join(SUBSCRIBE_POLICIES)}")
    if auth.metrics not in METRICS_POLICIES:
        raise ConfigError(f"auth.metrics: must be one of {', '.join(METRICS_POLICIES)}")
    if any(len(secret) < MIN_TOKEN_SECRET_CHARS for secret in auth.token_secret):
        raise ConfigError(f"auth.token_secret: each secret must be at least "
                          f"{MIN_TOKEN_SECRET_CHARS} characters (sseserver token secret "
                          "prints a fresh one)")
    if auth.max_token_ttl <= 0:
        raise ConfigError("auth.max_token_ttl: must be positive")


UNAUTHENTICATED_BIND = (
    "refusing to listen on {host} without authentication: anyone who can reach it "
    "could stream from your providers. Configure [auth] keys (see the README, "
    "\"Authentication\"), or pass --allow-unauthenticated (server.allow_unauthenticated "
    "= true, SSESERVER_SERVER_ALLOW_UNAUTHENTICATED=1) if this is on purpose")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (a name other than localhost is not:
    what it resolves to can change)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_error(host: str, auth: AuthSettings, allow_unauthenticated: bool
                   ) -> str | None:
    """Why the server must not start on ``host``, or None."""
    if auth.enabled or allow_unauthenticated or is_loopback(host):
        return None
    return UNAUTHENTICATED_BIND.format(host=host or "every address")
