"""Settings: frozen, validated dataclasses, and the loader that layers their sources.

Precedence: TOML file < ``SSESERVER_<SECTION>_<KEY>`` environment < overrides (flags).
The loader takes the environment as a mapping; only the CLI reads ``os.environ``.
Defaults and their reasons follow reference/http-hardening.md.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, get_type_hints

from sseserver.auth_settings import AuthSettings, KeySettings, parse_keys, validate_auth
from sseserver.errors import ConfigError

MiB = 1024 * 1024
PROVIDER_KINDS = frozenset({"openai", "anthropic", "openai-responses", "azure-openai",
                            "ollama", "gemini", "bedrock"})
ENV_PREFIX = "SSESERVER_"
# Read by the CLI (the config file's path), not a setting.
ENV_IGNORED = frozenset({"SSESERVER_CONFIG"})
SDK_PROVIDERS = (
    # name, key variable, base URL variable, default base URL (the official SDKs')
    ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1"),
    ("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
    # the resource endpoint (https://NAME.openai.azure.com) has no default
    ("azure-openai", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", None),
    # no key: the host variable alone enables it (ollama-python's, host:port accepted)
    ("ollama", None, "OLLAMA_HOST", "http://127.0.0.1:11434"),
    # google-genai takes GOOGLE_API_KEY over GEMINI_API_KEY when both are set: the
    # later row wins
    ("gemini", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL",
     "https://generativelanguage.googleapis.com"),
    ("gemini", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL",
     "https://generativelanguage.googleapis.com"),
)
# Provider settings beyond the URL and key that an official SDK reads from a variable:
# name, setting, variable (openai-python's AzureOpenAI reads OPENAI_API_VERSION).
SDK_PROVIDER_OPTIONS = (
    ("azure-openai", "api_version", "OPENAI_API_VERSION"),
)
# What a [providers.NAME] table may hold beyond kind, base_url and the key: Azure's
# deployment (the model name when unset) and api-version (see providers/azure.py).
PROVIDER_OPTIONS = ("api_version", "deployment")


# -- defaults shared with the layers that run without a Config (a relay policy, an
# upstream connection's timeouts): written once, here, with their reasons.

# s of quiet before a ": ping" comment: sse-starlette's 15 s, well inside the ~60 s
# after which proxies and load balancers cut an idle connection.
HEARTBEAT_INTERVAL = 15.0
# s for TCP and TLS to a provider: a handshake takes well under a second, and 10 s
# rides out a lost SYN (Linux retransmits it after 1 s, then 3 s).
CONNECT_TIMEOUT = 10.0
# s from the request to the whole response head: reasoning models think for minutes
# before their first token.
FIRST_BYTE_TIMEOUT = 300.0
# s without an event once the body flows: a provider's gaps are seconds; two minutes
# only ends a stream that has stalled.
IDLE_TIMEOUT = 120.0
# s a whole upstream response may last: streams.max_stream_duration's hour.
TOTAL_TIMEOUT = 3600.0
# Attempts after the first, and their backoff (s, doubled per attempt, jittered): the
# official OpenAI and Anthropic SDKs' defaults (2 retries, 0.5 s, at most 8 s).
MAX_RETRIES = 2
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 8.0
# The data of one event, as the SSE line cap (core/sse.py): a provider's event is one
# JSON chunk, well under 64 KiB even with big tool-call arguments.
MAX_EVENT_BYTES = 1 * MiB
# Bytes that carry no event (comments, blank lines) between two events: far above
# keep-alive comments within any idle limit, ended within a millisecond of a flood.
MAX_BYTES_WITHOUT_EVENT = 1 * MiB


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Where a provider lives and how to authenticate. ``base_url`` has no trailing /."""

    name: str
    kind: str  # one of PROVIDER_KINDS: which wire format it speaks
    base_url: str
    api_key: str | None = None  # for "bedrock": the AWS secret access key
    # AWS (kind "bedrock"): the region signed for, and the rest of the credentials
    region: str | None = None
    access_key_id: str | None = None
    session_token: str | None = None
    # Azure (kind "azure-openai"): the api-version sent, and the deployment to call
    api_version: str | None = None
    deployment: str | None = None

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """Every value that must never be shown (the redactor's list)."""
        return self.api_key, self.session_token

    def __repr__(self) -> str:  # never show the key
        return (f"ProviderSettings(name={self.name!r}, kind={self.kind!r}, "
                f"base_url={self.base_url!r})")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080  # 0 picks a free port
    workers: int = 1
    backlog: int = 2048  # uvicorn's default; nginx uses 511
    # Each stream holds a client and an upstream socket; over the cap: 503 + Retry-After.
    max_connections: int = 10000
    # Client sockets, streams or not (a client can hold one without making a stream).
    # 0: (open-file limit - 20) / 2, so every stream also gets its upstream socket
    # (9,990 under a limit of 20,000). Over it: 503 + Retry-After, then close.
    max_client_connections: int = 0
    # One address's share (nginx limit_conn, whose 503 it answers too): a browser opens
    # at most 6 connections per host over HTTP/1.1, so 1,000 is ~160 busy browsers
    # behind one NAT. Behind a reverse proxy every client has the proxy's address: set
    # 0 (no limit) there and limit per client at the proxy.
    max_connections_per_address: int = 1000
    demo: bool = False
    cors_origins: tuple[str, ...] = ()
    # Access-Control-Allow-Credentials for the listed origins (never with "*"): off, as
    # nothing here authenticates by cookie; turn on only behind a proxy that does.
    cors_allow_credentials: bool = False
    # Request header names always allowed; with credentials, the only way to allow a
    # credential-class name (authorization, cookie, x-api-key...).
    cors_allow_headers: tuple[str, ...] = ()
    # Listen beyond loopback with no [auth] keys: off, since anyone who can reach the
    # port could then stream from the paid providers (README, "Authentication").
    allow_unauthenticated: bool = False


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    header_timeout: float = 10.0  # s; nginx 60 s, the CIS benchmark suggests 10 s
    max_head_bytes: int = 16384  # h11's limit; Envoy allows 60 KiB
    max_header_count: int = 100  # Envoy and gunicorn
    max_body_bytes: int = 8 * MiB  # a long chat history fits; nginx defaults to 1 MiB
    # Chunks of one chunked request body (0: no bound). h11 reads a chunk at ~52,000
    # instructions whatever its size, so 8 MiB of one-byte chunks would take seconds of
    # CPU; a client's chunks are its writes (KiBs each: a JSON body is a few).
    max_body_chunks: int = 4096
    body_timeout: float = 60.0  # s; nginx client_body_timeout
    keepalive_timeout: float = 5.0  # s; uvicorn
    max_pipelined_bytes: int = 65536  # unread input while a response is in progress
    write_high_water: int = 65536  # uvicorn's high-water mark
    write_low_water: int = 16384
    max_write_buffer: int = 1 * MiB  # Envoy's per-connection buffer
    slow_consumer_timeout: float = 30.0  # s above high water before eviction


@dataclass(frozen=True, slots=True)
class StreamSettings:
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    retry_ms: int = 3000  # what browsers use when told nothing
    max_stream_duration: float = 3600.0  # s; Mercure: hubs should cap stream lifetime
    drain_timeout: float = 30.0  # s; gunicorn's graceful timeout
    max_events: int = 100_000
    max_bytes: int = 16 * MiB
    retention: float = 300.0  # s a finished resumable stream stays resumable
    detached_idle_timeout: float = 600.0
    # Where resumable streams are kept: "memory" (this process only, no dependency),
    # or a redis://, rediss:// or unix:// URL that every process and machine shares.
    store: str = "memory"


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    connect_timeout: float = CONNECT_TIMEOUT
    first_byte_timeout: float = FIRST_BYTE_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    total_timeout: float = TOTAL_TIMEOUT
    max_retries: int = MAX_RETRIES
    backoff_initial: float = BACKOFF_INITIAL
    backoff_max: float = BACKOFF_MAX
    # HTTP/1.1 holds one connection per concurrent stream for the stream's whole life,
    # so this caps concurrent streams per provider: keep it at server.max_connections.
    max_connections_per_origin: int = 10000
    pool_idle_timeout: float = 30.0
    max_event_bytes: int = MAX_EVENT_BYTES
    max_bytes_without_event: int = MAX_BYTES_WITHOUT_EVENT


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    default_provider: str | None = None
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    fallbacks: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}))


SECTIONS: dict[str, type] = {
    "server": ServerSettings, "limits": LimitsSettings, "streams": StreamSettings,
    "upstream": UpstreamSettings, "routing": RoutingSettings, "auth": AuthSettings,
}


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerSettings = field(default_factory=ServerSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    streams: StreamSettings = field(default_factory=StreamSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    providers: tuple[ProviderSettings, ...] = ()

    def provider(self, name: str) -> ProviderSettings | None:
        return next((p for p in self.providers if p.name == name), None)


def read_config_file(path: str) -> str:
    """The text of a config file. Raises :class:`ConfigError` if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror}") from None


def load_config(toml_text: str | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Build a validated :class:`Config`. Raises :class:`ConfigError` naming the key."""
    env = env or {}
    raw: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    providers: dict[str, dict[str, Any]] = {}
    if toml_text:
        _merge_toml(_parse_toml(toml_text), raw, providers, env)
    _merge_env(env, raw)
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        _check_known(section, name, key)
        raw[section][name] = value
    _merge_sdk_providers(env, providers)
    _merge_aws(env, providers)
    sections = {name: _build(cls, name, raw[name]) for name, cls in SECTIONS.items()}
    config = Config(**sections, providers=tuple(
        _provider(name, values) for name, values in providers.items()))
    _validate(config)
    return config


# -- sources -------------------------------------------------------------------------


def _parse_toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file is not valid TOML: {exc}") from None


def _merge_toml(data: dict[str, Any], raw: dict[str, dict[str, Any]],
                providers: dict[str, dict[str, Any]], env: Mapping[str, str]) -> None:
    for section, values in data.items():
        if section == "providers":
            _merge_toml_providers(values, providers, env)
            continue
        if section not in SECTIONS:
            raise ConfigError(f"unknown section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table")
        for name, value in values.items():
            _check_known(section, name, f"{section}.{name}")
            raw[section][name] = parse_keys("auth.keys", value) if (
                section, name) == ("auth", "keys") else value


def _merge_toml_providers(values: Any, providers: dict[str, dict[str, Any]],
                          env: Mapping[str, str]) -> None:
    if not isinstance(values, dict):
        raise ConfigError("[providers] must hold one table per provider")
    for name, table in values.items():
        if not isinstance(table, dict):
            raise ConfigError(f"[providers.{name}] must be a table")
        unknown = set(table) - {"kind", "base_url", "api_key", "api_key_env", "region",
                                "access_key_id", *PROVIDER_OPTIONS}
        if unknown:
            raise ConfigError(f"unknown setting 'providers.{name}.{sorted(unknown)[0]}'")
        entry = {k: v for k, v in table.items() if k != "api_key_env"}
        if "api_key_env" in table:
            entry["api_key"] = env.get(str(table["api_key_env"]))
        providers[name] = entry


def _merge_env(env: Mapping[str, str], raw: dict[str, dict[str, Any]]) -> None:
    for variable, value in env.items():
        if not variable.startswith(ENV_PREFIX) or variable in ENV_IGNORED:
            continue
        rest = variable[len(ENV_PREFIX):].lower()
        section, _, name = rest.partition("_")
        if section not in SECTIONS or name not in _field_types(SECTIONS[section]):
            raise ConfigError(f"unknown environment variable {variable}")
        kind = _field_types(SECTIONS[section])[name]
        raw[section][name] = _from_env(variable, value, kind)


def _merge_sdk_providers(env: Mapping[str, str], providers: dict[str, dict[str, Any]]
                         ) -> None:
    for name, key_var, url_var, default_url in SDK_PROVIDERS:
        key = env.get(key_var) if key_var else None
        url = env.get(url_var)
        if (key if key_var else url) is None and name not in providers:
            continue
        entry = providers.setdefault(name, {"kind": name, "base_url": default_url})
        entry.setdefault("kind", name)
        entry.setdefault("base_url", default_url)
        if key is not None:
            entry["api_key"] = key
        if url:
            entry["base_url"] = _SDK_URL_FORMS.get(name, str)(url)
    for name, setting, variable in SDK_PROVIDER_OPTIONS:
        value = env.get(variable)
        if value and name in providers:
            providers[name].setdefault(setting, value)


def _ollama_host(value: str) -> str:
    """``OLLAMA_HOST`` as ollama-python reads it: a URL as it is (its scheme's port),
    or ``host[:port]`` over http, the port 11434 when none is given."""
    host = value.strip()
    if "://" in host:
        return host
    if host.rpartition("]")[2].count(":") != 1:  # the port follows an IPv6 literal's ]
        head, slash, path = host.partition("/")
        host = f"{head}:11434{slash}{path}"
    return f"http://{host}"


_SDK_URL_FORMS = {"ollama": _ollama_host}


def _merge_aws(env: Mapping[str, str], providers: dict[str, dict[str, Any]]) -> None:
    """Bedrock providers take botocore's variables: the credentials (a table's own
    ``api_key`` is the secret access key), the region, and so the default endpoint.
    Complete credentials and a region in the environment enable provider ``bedrock``
    when no Bedrock provider is configured."""
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY") and region \
            and all(entry.get("kind") != "bedrock" for entry in providers.values()):
        providers["bedrock"] = {"kind": "bedrock"}
    for entry in providers.values():
        if entry.get("kind") != "bedrock":
            continue
        entry.setdefault("region", region)
        if "api_key" not in entry:
            entry["api_key"] = env.get("AWS_SECRET_ACCESS_KEY")
        entry.setdefault("access_key_id", env.get("AWS_ACCESS_KEY_ID"))
        entry.setdefault("session_token", env.get("AWS_SESSION_TOKEN"))
        if isinstance(entry["region"], str):
            entry.setdefault("base_url",
                             f"https://bedrock-runtime.{entry['region']}.amazonaws.com")


# -- typing and validation -----------------------------------------------------------


def _field_types(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _check_known(section: str, name: str, key: str) -> None:
    if section not in SECTIONS or name not in _field_types(SECTIONS[section]):
        raise ConfigError(f"unknown setting '{key}'")


def _from_env(variable: str, text: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in _BOOLEANS:
                raise ValueError
            return _BOOLEANS[lowered]
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind == tuple[str, ...]:
            return tuple(part.strip() for part in text.split(",") if part.strip())
        if kind == str | None:
            return text or None
        if kind is str:
            return text
    except ValueError:
        raise ConfigError(f"{variable}: {text!r} is not a valid {_type_name(kind)}") from None
    raise ConfigError(f"{variable}: this setting cannot be set from the environment")


# Lists of strings that also take a single string, the common case (auth.token_secret:
# one secret, or several while one is rotated out).
ONE_OR_SEVERAL = frozenset({"auth.token_secret"})

_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}


def _type_name(kind: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        kind, "list of strings" if kind == tuple[str, ...] else str(kind))


def _coerce(key: str, value: Any, kind: Any) -> Any:
    if key in ONE_OR_SEVERAL and isinstance(value, str):
        return (value,)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == tuple[str, ...] and isinstance(value, list | tuple) and \
            all(isinstance(v, str) for v in value):
        return tuple(value)
    if kind == str | None and (value is None or isinstance(value, str)):
        return value
    if kind in (bool, int, float, str) and type(value) is kind:
        return value
    if kind == Mapping[str, str] and isinstance(value, Mapping) and \
            all(isinstance(v, str) for v in value.values()):
        return MappingProxyType(dict(value))
    if kind == Mapping[str, tuple[str, ...]] and isinstance(value, Mapping) and all(
            isinstance(v, list | tuple) and all(isinstance(s, str) for s in v)
            for v in value.values()):
        return MappingProxyType({k: tuple(v) for k, v in value.items()})
    if kind == Mapping[str, KeySettings] and isinstance(value, Mapping) and \
            all(isinstance(v, KeySettings) for v in value.values()):
        return value  # built by parse_keys
    raise ConfigError(f"{key}: expected {_type_name(kind)}, got {value!r}")


def _build(cls: type, section: str, values: dict[str, Any]) -> Any:
    types = _field_types(cls)
    coerced = {name: _coerce(f"{section}.{name}", value, types[name])
               for name, value in values.items()}
    for name, value in coerced.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{section}.{name}: must not be negative, got {value}")
    return cls(**coerced)


def _provider(name: str, values: dict[str, Any]) -> ProviderSettings:
    kind = values.get("kind")
    if kind not in PROVIDER_KINDS:
        raise ConfigError(f"providers.{name}.kind: must be one of "
                          f"{', '.join(sorted(PROVIDER_KINDS))}, got {kind!r}")
    if kind == "bedrock" and values.get("region") is None:
        raise ConfigError(f"providers.{name}.region: needed (or AWS_REGION), "
                          "like \"us-east-1\"")
    base_url = values.get("base_url")
    variable = next((url for sdk, _, url, _ in SDK_PROVIDERS if sdk == name), None)
    if base_url is None and variable:
        raise ConfigError(f"providers.{name}.base_url: required (set {variable})")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"providers.{name}.base_url: must start with http:// or https://")
    key = values.get("api_key")
    if key is not None and not isinstance(key, str):
        raise ConfigError(f"providers.{name}.api_key: must be a string")
    if kind == "bedrock":
        return _aws_provider(name, values, base_url.rstrip("/"), key)
    options = {}
    for option in PROVIDER_OPTIONS:
        value = values.get(option)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"providers.{name}.{option}: must be a non-empty string")
        options[option] = value
    return ProviderSettings(name, kind, base_url.rstrip("/"), key or None, **options)


def _aws_provider(name: str, values: dict[str, Any], base_url: str,
                  secret: str | None) -> ProviderSettings:
    region = values.get("region")
    if not isinstance(region, str) or not re.fullmatch(r"[a-z0-9-]+", region):
        raise ConfigError(f"providers.{name}.region: needed (or AWS_REGION), "
                          "like \"us-east-1\"")
    key_id, token = values.get("access_key_id"), values.get("session_token")
    if not secret or not isinstance(key_id, str) or not key_id:
        raise ConfigError(f"providers.{name}: needs AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY in the environment")
    return ProviderSettings(name, "bedrock", base_url, secret, region=region,
                            access_key_id=key_id,
                            session_token=token if isinstance(token, str) and token else None)


def _validate(config: Config) -> None:
    server, limits = config.server, config.limits
    if server.port > 65535:
        raise ConfigError(f"server.port: must be 0..65535, got {server.port}")
    for key, value in (("server.workers", server.workers),
                       ("server.max_connections", server.max_connections),
                       ("limits.max_head_bytes", limits.max_head_bytes),
                       ("limits.max_body_bytes", limits.max_body_bytes),
                       ("upstream.max_event_bytes", config.upstream.max_event_bytes),
                       ("upstream.max_bytes_without_event",
                        config.upstream.max_bytes_without_event)):
        if value < 1:
            raise ConfigError(f"{key}: must be a positive integer, got {value}")
    if limits.max_body_chunks < 0:
        raise ConfigError("limits.max_body_chunks: must be 0 (no bound) or more, got "
                          f"{limits.max_body_chunks}")
    if not limits.write_low_water < limits.write_high_water <= limits.max_write_buffer:
        raise ConfigError("limits: need write_low_water < write_high_water <= "
                          "max_write_buffer")
    if config.streams.heartbeat_interval <= 0:
        raise ConfigError("streams.heartbeat_interval: must be positive")
    _validate_store(config.streams.store)
    _validate_cors(server)
    validate_auth(config.auth)
    names = {p.name for p in config.providers}
    routing = config.routing
    targets = [*routing.aliases.items(),
               *((alias, t) for alias, chain in routing.fallbacks.items() for t in chain)]
    for alias, target in targets:
        provider, _, model = target.partition("/")
        if not model or not provider:
            raise ConfigError(f"routing: {alias!r} -> {target!r} must be 'provider/model'")
        if names and provider not in names:
            raise ConfigError(f"routing: {alias!r} names unknown provider {provider!r}")
    if routing.default_provider and names and routing.default_provider not in names:
        raise ConfigError(f"routing.default_provider: unknown provider "
                          f"{routing.default_provider!r}")


# A serialized origin (RFC 6454 §6.2): scheme "://" host [":" port], or "null".
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^\x00-\x20\x7f/?#]+|null")
_HEADER_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2 token


STORE_SCHEMES = frozenset({"redis", "rediss", "unix"})


def _validate_store(store: str) -> None:
    scheme, separator, rest = store.partition("://")
    if store == "memory" or (separator and scheme in STORE_SCHEMES and rest):
        return
    # the scheme alone: a URL may hold a password
    shown = f"a {scheme}:// URL" if separator else \
        repr(store[:20]) if "@" not in store else "another value"
    raise ConfigError(f"streams.store: must be \"memory\" or a redis://, rediss:// or "
                      f"unix:// URL, got {shown}")


def _validate_cors(server: ServerSettings) -> None:
    for origin in server.cors_origins:
        if origin != "*" and _ORIGIN.fullmatch(origin) is None:
            raise ConfigError(f"server.cors_origins: {origin!r} is not an origin "
                              "(scheme://host[:port], no path) or \"*\"")
    for name in server.cors_allow_headers:
        if _HEADER_NAME.fullmatch(name) is None:
            raise ConfigError(f"server.cors_allow_headers: {name!r} is not a header name")
