"""Routing, sans-IO: the rules of :class:`Router` as tables, with no loop and no
socket; then the gateway's use of it (which provider serves a model no route names,
what a server with none answers, what it says at start)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sseserver.config import ProviderSettings, RoutingSettings, load_config
from sseserver.errors import RequestError
from sseserver.gateway import Gateway
from sseserver.providers.registry import make_provider
from sseserver.routing import Router, model_family
from sseserver.schema import parse_generation_request

BOTH_KEYS = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "ak-test"}

# name -> kind of the providers a row configures
OPENAI_ONLY = {"openai": "openai"}
BOTH = {"openai": "openai", "anthropic": "anthropic"}
WITH_LOCAL = {**BOTH, "local": "openai"}  # two providers of the OpenAI format
ALL_KINDS = {**BOTH, "gemini": "gemini", "ollama": "ollama"}
ROUTES = RoutingSettings(
    aliases={"fast": "anthropic/claude-haiku", "gpt-4o-mini": "openai/gpt-4o-mini-2024"},
    fallbacks={"smart": ("anthropic/claude-opus", "openai/gpt-5"),
               "fast": ("openai/gpt-4o-mini",)})


def router(kinds: dict[str, str], settings: RoutingSettings = ROUTES) -> Router:
    return Router({name: make_provider(ProviderSettings(name, kind, "http://127.0.0.1:9"))
                   for name, kind in kinds.items()}, settings)


def targets(routes: Router, model: str, provider: str | None = None
            ) -> list[tuple[str, str]]:
    return [(t.provider.settings.name, t.model) for t in routes.targets(model, provider)]


@pytest.mark.parametrize(("kinds", "model", "provider", "expected"), [
    # 1. the provider field names the provider; the model goes as it is, even "a/b"
    (BOTH, "claude-sonnet-4", "openai", [("openai", "claude-sonnet-4")]),
    (BOTH, "anthropic/x", "openai", [("openai", "anthropic/x")]),
    (BOTH, "smart", "anthropic", [("anthropic", "smart")]),  # over a fallback chain
    # 2. a fallback chain, before an alias of the same name
    (BOTH, "smart", None, [("anthropic", "claude-opus"), ("openai", "gpt-5")]),
    (BOTH, "fast", None, [("openai", "gpt-4o-mini")]),
    (BOTH, "gpt-4o-mini", None, [("openai", "gpt-4o-mini-2024")]),  # an alias
    # 3. provider/model when the prefix is a configured provider, split at the first /
    (BOTH, "anthropic/claude-sonnet-4", None, [("anthropic", "claude-sonnet-4")]),
    (BOTH, "openai/ft:gpt/x", None, [("openai", "ft:gpt/x")]),
    (OPENAI_ONLY, "meta/llama", None, [("openai", "meta/llama")]),  # no provider "meta"
    # 4. the only provider serves every other name
    (OPENAI_ONLY, "claude-sonnet-4", None, [("openai", "claude-sonnet-4")]),
    # 4. several: a well-known family goes to the one provider of its format
    (BOTH, "gpt-4o", None, [("openai", "gpt-4o")]),
    (BOTH, "GPT-4o", None, [("openai", "GPT-4o")]),
    (BOTH, "o3-mini", None, [("openai", "o3-mini")]),
    (BOTH, "o1", None, [("openai", "o1")]),
    (BOTH, "o4.1", None, [("openai", "o4.1")]),
    (BOTH, "claude-opus-4", None, [("anthropic", "claude-opus-4")]),
    (ALL_KINDS, "gemini-2.5-pro", None, [("gemini", "gemini-2.5-pro")]),
    (WITH_LOCAL, "claude-opus-4", None, [("anthropic", "claude-opus-4")]),
])
def test_the_rules_in_their_order(kinds: dict[str, str], model: str, provider: str | None,
                                  expected: list[tuple[str, str]]) -> None:
    assert targets(router(kinds), model, provider) == expected


@pytest.mark.parametrize(("kinds", "model", "provider", "status", "words"), [
    (BOTH, "x", "nobody", 400, "unknown provider 'nobody'; configured: anthropic, openai"),
    ({}, "x", "openai", 400, "configured: none"),
    ({}, "gpt-4o", None, 503, "no provider is configured"),
    (BOTH, "llama3.1", None, 400, "matches no route"),
    (BOTH, "o100-custom", None, 400, "matches no route"),  # starts like a family only
    (BOTH, "o3x", None, 400, "matches no route"),
    (BOTH, "gemini-2.5-pro", None, 400, "matches no route"),  # no provider of its format
    (WITH_LOCAL, "gpt-4o", None, 400, "anthropic, local, openai"),  # two of its format
    (OPENAI_ONLY, "nobody/model-x", None, 200, ""),  # an unknown prefix is a model name
])
def test_refusals(kinds: dict[str, str], model: str, provider: str | None, status: int,
                  words: str) -> None:
    if status == 200:
        assert targets(router(kinds), model, provider) == [("openai", model)]
        return
    with pytest.raises(RequestError) as refused:
        router(kinds).targets(model, provider)
    assert refused.value.status == status and words in str(refused.value)


@pytest.mark.parametrize(("settings", "kinds", "model", "expected"), [
    (RoutingSettings(default_provider="anthropic"), BOTH, "gpt-4o",
     [("anthropic", "gpt-4o")]),  # the default wins over the family
    (RoutingSettings(default_provider="local"), WITH_LOCAL, "llama3",
     [("local", "llama3")]),
    (RoutingSettings(aliases={"x": "nobody/m"}), BOTH, "x", None),  # unknown: 400
    (RoutingSettings(fallbacks={"x": ("openai/a", "nobody/b")}), BOTH, "x", None),
])
def test_the_default_provider_and_routes_naming_unknown_providers(
        settings: RoutingSettings, kinds: dict[str, str], model: str,
        expected: list[tuple[str, str]] | None) -> None:
    routes = router(kinds, settings)
    if expected is None:
        with pytest.raises(RequestError) as refused:
            routes.targets(model)
        assert refused.value.status == 400 and "unknown provider 'nobody'" in str(
            refused.value)
    else:
        assert targets(routes, model) == expected


@pytest.mark.parametrize(("model", "family"), [
    ("claude-3-5-sonnet", "anthropic"), ("Claude-x", "anthropic"), ("claude", None),
    ("gpt-4o", "openai"), ("chatgpt-4o-latest", "openai"), ("codex-mini", "openai"),
    ("o1", "openai"), ("o1-pro", "openai"), ("o3.5", "openai"), ("o4-mini", "openai"),
    ("o10", None), ("o3x", None), ("gemini-2.0-flash", "gemini"), ("gemini", None),
    ("llama3.1", None), ("", None),
])
def test_model_families(model: str, family: str | None) -> None:
    assert model_family(model) == family


@pytest.mark.parametrize(("kinds", "settings", "default", "level", "words"), [
    ({}, RoutingSettings(), None, logging.WARNING, "no provider is configured"),
    (BOTH, RoutingSettings(), None, logging.INFO, "refused (400)"),
    (BOTH, RoutingSettings(default_provider="openai"), "openai", logging.INFO,
     "go to provider 'openai'"),
    (OPENAI_ONLY, RoutingSettings(), "openai", logging.INFO, "go to provider 'openai'"),
])
def test_the_startup_notice_and_the_default(
        kinds: dict[str, str], settings: RoutingSettings, default: str | None, level: int,
        words: str) -> None:
    routes = router(kinds, settings)
    assert routes.default_provider_name() == default
    notice = routes.startup_notice()
    assert notice.level == level and words in notice.message
    assert f"default={default!r}" in repr(routes)


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


def _verdict(routes: Router, method: str, model: str, provider: str | None
             ) -> object:
    try:
        found = getattr(routes, method)(model, provider)
    except RequestError as exc:
        return (exc.status, str(exc), exc.headers)
    return [(t.provider.settings.name, t.model) for t in found]


_NAMES = st.sampled_from(["openai", "anthropic", "local", "gemini"])
_MODELS = st.one_of(
    st.sampled_from(["gpt-4o", "claude-sonnet-4", "o3", "fast", "smart", "openai/x",
                     "anthropic/claude", "meta/llama", "gemini-2", "", "/", "local/"]),
    st.text(alphabet="abcdo13-/.:", max_size=12))


@given(kinds=st.dictionaries(_NAMES, st.sampled_from(["openai", "anthropic", "gemini"]),
                             max_size=3),
       default=st.one_of(st.none(), _NAMES), aliases=st.booleans(),
       fallbacks=st.booleans(), model=_MODELS, provider=st.one_of(st.none(), _NAMES))
def test_any_name_is_routed_as_the_rules_route_it(
        kinds: dict[str, str], default: str | None, aliases: bool, fallbacks: bool,
        model: str, provider: str | None) -> None:
    """A name no rule can name (no "/", no alias or chain configured) goes straight to
    the default or only provider: the same targets, or refusal, as asking each rule."""
    settings = RoutingSettings(
        default_provider=default,
        aliases={"fast": "openai/gpt-4o-mini"} if aliases else {},
        fallbacks={"smart": ("anthropic/claude-opus", "openai/gpt-5")} if fallbacks else {})
    routes = router(kinds, settings)
    assert _verdict(routes, "targets", model, provider) == \
        _verdict(routes, "targets_by_rules", model, provider)
