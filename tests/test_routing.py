"""Which provider serves a model no route names, and what a server with none answers."""

from __future__ import annotations

import logging

import pytest

from sseserver.config import load_config
from sseserver.errors import RequestError
from sseserver.gateway import Gateway
from sseserver.providers.registry import make_provider
from sseserver.schema import parse_generation_request

BOTH_KEYS = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "ak-test"}


def gateway(env: dict[str, str], overrides: dict[str, object] | None = None,
            toml: str | None = None) -> Gateway:
    config = load_config(toml, env, overrides or {})
    return Gateway(config, {p.name: make_provider(p) for p in config.providers})


def route(gw: Gateway, model: str, **fields: str) -> list[tuple[str, str]]:
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}]%s}' % (
        model.encode(), b"".join(b', "%s": "%s"' % (k.encode(), v.encode())
                                 for k, v in fields.items()))
    targets = gw.resolve(parse_generation_request(body))
    return [(t.provider.settings.name, t.model) for t in targets]


def test_several_providers_and_no_default_route_well_known_model_names() -> None:
    gw = gateway(BOTH_KEYS)
    assert route(gw, "gpt-4o-mini") == [("openai", "gpt-4o-mini")]
    assert route(gw, "o3-mini") == [("openai", "o3-mini")]
    assert route(gw, "o1") == [("openai", "o1")]
    assert route(gw, "claude-sonnet-4") == [("anthropic", "claude-sonnet-4")]
    # a name that only starts like a family is not one
    with pytest.raises(RequestError):
        route(gw, "o100-custom")


def test_a_family_with_two_providers_of_its_format_is_not_guessed() -> None:
    toml = '[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
    gw = gateway(BOTH_KEYS, toml=toml)
    with pytest.raises(RequestError):
        route(gw, "gpt-4o-mini")
    assert route(gw, "claude-sonnet-4") == [("anthropic", "claude-sonnet-4")]


def test_several_providers_and_no_default_refuse_to_guess() -> None:
    gw = gateway(BOTH_KEYS)
    with pytest.raises(RequestError) as refused:
        route(gw, "llama3.1")
    assert refused.value.status == 400
    message = str(refused.value)
    for way in ('"provider"', "provider/model", "[routing.aliases]", "[routing.fallbacks]",
                "routing.default_provider", "anthropic, openai"):
        assert way in message
    # every explicit way still routes
    assert route(gw, "gpt-4o-mini", provider="openai") == [("openai", "gpt-4o-mini")]
    assert route(gw, "anthropic/claude-sonnet-4") == [("anthropic", "claude-sonnet-4")]


def test_the_default_provider_or_the_only_one_serves_unrouted_models() -> None:
    gw = gateway(BOTH_KEYS, {"routing.default_provider": "anthropic"})
    assert route(gw, "claude-sonnet-4") == [("anthropic", "claude-sonnet-4")]
    gw = gateway({"OPENAI_API_KEY": "sk-test"})
    assert route(gw, "gpt-4o-mini") == [("openai", "gpt-4o-mini")]


@pytest.mark.parametrize("overrides", [{}, {"routing.default_provider": "openai"}])
def test_no_provider_answers_503_saying_what_to_configure(overrides: dict[str, object]
                                                          ) -> None:
    gw = gateway({}, overrides)
    with pytest.raises(RequestError) as refused:
        route(gw, "gpt-4o-mini")
    assert refused.value.status == 503
    assert ("retry-after", "60") in refused.value.headers
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "[providers.NAME]", "--demo"):
        assert name in str(refused.value)


@pytest.mark.parametrize(("env", "overrides", "expected"), [
    ({}, {}, "no provider is configured"),
    (BOTH_KEYS, {}, "several providers and no routing.default_provider"),
    (BOTH_KEYS, {"routing.default_provider": "openai"}, "go to provider 'openai'"),
    ({"ANTHROPIC_API_KEY": "ak-test"}, {}, "go to provider 'anthropic'"),
])
def test_the_start_says_who_serves_unrouted_models(
        caplog: pytest.LogCaptureFixture, env: dict[str, str], overrides: dict[str, object],
        expected: str) -> None:
    with caplog.at_level(logging.INFO, logger="sseserver.gateway"):
        gateway(env, overrides).log_routing()
    assert expected in caplog.text


def test_no_provider_warning_names_every_way_to_configure_one(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sseserver.gateway"):
        gateway({}).log_routing()
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "[providers.NAME]", "--demo"):
        assert name in record.getMessage()
