"""Configuration: defaults, the three sources and their precedence, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sseserver.config import Config, load_config, read_config_file
from sseserver.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "config.example.toml"


def test_defaults() -> None:
    config = load_config()
    assert config == Config()
    assert config.server.port == 8080
    assert config.limits.max_head_bytes == 16384
    assert config.streams.heartbeat_interval == 15.0
    assert config.providers == ()


def test_example_file_loads() -> None:
    config = load_config(read_config_file(str(EXAMPLE)), env={"OPENAI_API_KEY": "sk-1"})
    assert {p.name for p in config.providers} == {"openai", "anthropic", "local"}
    assert config.provider("openai").api_key == "sk-1"  # type: ignore[union-attr]
    assert config.provider("anthropic").api_key is None  # type: ignore[union-attr]
    assert config.routing.aliases["fast"] == "openai/gpt-4o-mini"
    assert config.routing.fallbacks["smart"] == ("anthropic/claude-sonnet-4", "openai/gpt-4o")


def test_precedence_toml_then_env_then_overrides() -> None:
    toml = "[server]\nport = 1000\nhost = '0.0.0.0'\n[streams]\nheartbeat_interval = 1\n"
    env = {"SSESERVER_SERVER_PORT": "2000", "SSESERVER_STREAMS_HEARTBEAT_INTERVAL": "2.5"}
    config = load_config(toml, env, {"server.port": 3000})
    assert config.server.port == 3000
    assert config.server.host == "0.0.0.0"
    assert config.streams.heartbeat_interval == 2.5
    assert load_config(toml, env).server.port == 2000
    assert load_config(toml).server.port == 1000


def test_environment_types() -> None:
    config = load_config(env={"SSESERVER_SERVER_DEMO": "yes",
                              "SSESERVER_SERVER_CORS_ORIGINS": "http://a.example, http://b.example",
                              "SSESERVER_ROUTING_DEFAULT_PROVIDER": "openai",
                              "OPENAI_API_KEY": "k", "SSESERVER_CONFIG": "/ignored"})
    assert config.server.demo is True
    assert config.server.cors_origins == ("http://a.example", "http://b.example")
    assert config.routing.default_provider == "openai"


def test_sdk_variables_enable_providers() -> None:
    config = load_config(env={"OPENAI_API_KEY": "sk", "OPENAI_BASE_URL": "http://h:9/v1/",
                              "ANTHROPIC_API_KEY": "ak"})
    openai, anthropic = config.provider("openai"), config.provider("anthropic")
    assert openai is not None and openai.base_url == "http://h:9/v1"
    assert anthropic is not None and anthropic.base_url == "https://api.anthropic.com"
    assert anthropic.kind == "anthropic"


def test_keys_never_appear_in_repr() -> None:
    config = load_config(env={"OPENAI_API_KEY": "sk-secret-123"})
    assert "sk-secret-123" not in repr(config)
    assert "sk-secret-123" not in str(config.providers)


@pytest.mark.parametrize(("toml", "env", "overrides", "message"), [
    ("[serverr]\nport = 1\n", {}, {}, "unknown section [serverr]"),
    ("[limits]\nmax_bodybytes = 1\n", {}, {}, "unknown setting 'limits.max_bodybytes'"),
    ("[server]\nport = 'x'\n", {}, {}, "server.port: expected integer"),
    ("[server]\nport = ", {}, {}, "not valid TOML"),
    (None, {"SSESERVER_SERVER_PORT": "eighty"}, {}, "SSESERVER_SERVER_PORT: 'eighty'"),
    (None, {"SSESERVER_SERVER_PROT": "1"}, {}, "unknown environment variable"),
    (None, {"SSESERVER_SERVER_DEMO": "maybe"}, {}, "SSESERVER_SERVER_DEMO"),
    (None, {}, {"server.nope": 1}, "unknown setting 'server.nope'"),
    (None, {}, {"limits.max_body_bytes": -1}, "limits.max_body_bytes: must not be negative"),
    (None, {}, {"limits.write_low_water": 70000}, "write_low_water < write_high_water"),
    (None, {}, {"server.port": 70000}, "server.port: must be 0..65535"),
    (None, {}, {"server.workers": 0}, "server.workers: must be a positive integer"),
    ("[providers.x]\nkind = 'grpc'\nbase_url = 'http://h'\n", {}, {},
     "providers.x.kind: must be one of"),
    ("[providers.x]\nkind = 'openai'\nbase_url = 'h:80'\n", {}, {},
     "providers.x.base_url: must start with http"),
    ("[providers.x]\nkind = 'openai'\nbase_url = 'http://h'\ntoken = 1\n", {}, {},
     "unknown setting 'providers.x.token'"),
    ("[routing.aliases]\nfast = 'gpt-4o'\n", {}, {}, "must be 'provider/model'"),
    ("[routing.aliases]\nfast = 'nobody/gpt-4o'\n[providers.x]\nkind = 'openai'\n"
     "base_url = 'http://h'\n", {}, {}, "unknown provider 'nobody'"),
])
def test_errors_name_the_key(toml: str | None, env: dict[str, str],
                             overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(toml, env, overrides)
    assert message in str(info.value)


def test_unreadable_file() -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_config_file("/nonexistent/sseserver.toml")
