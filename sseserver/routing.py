"""Which providers serve a generation request, in fallback order: routing, sans-IO.

A :class:`Router` holds the configured providers and the ``[routing]`` settings, and
turns a request's ``provider`` field and model name into the chain of
:class:`Target` s a relay walks. It reads no clock, socket or loop: every rule is a
row of a table in tests/test_routing.py. The order of the rules:

1. a ``provider`` field names the provider, the model is taken as it is;
2. a ``[routing.fallbacks]`` chain, then a ``[routing.aliases]`` entry, for the name;
3. a ``provider/model`` name whose prefix is a configured provider;
4. the default provider: ``routing.default_provider``, or the only one configured,
   or the one provider of the wire format a well-known model name belongs to.

What a caller's key or token allows is not routing: the gateway checks it on the
targets this returns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sseserver.config import RoutingSettings
from sseserver.errors import RequestError
from sseserver.providers.base import Provider


@dataclass(slots=True, unsafe_hash=True)  # a value; not frozen: see schema.Message
class Target:
    """One step of a route: a provider, and the model name it is asked for."""

    provider: Provider
    model: str


# Model name prefixes that belong to one vendor's API, so that with both SDK keys set
# and no routing table the obvious names still go where they can be served.
MODEL_FAMILIES: tuple[tuple[str, str], ...] = (
    ("claude-", "anthropic"),
    ("gpt-", "openai"), ("chatgpt-", "openai"), ("o1", "openai"), ("o3", "openai"),
    ("o4", "openai"), ("codex-", "openai"), ("gemini-", "gemini"),
)

NO_PROVIDER_HINT = ("set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or the AWS_* "
                    "variables, add a [providers.NAME] table to the config file, or run "
                    "with --demo")
NO_PROVIDER_MESSAGE = f"no provider is configured: {NO_PROVIDER_HINT}"
# Seconds. Providers are read at start, so only a restart helps: a minute spares the
# server clients that would ask again at once, and is about the time of a redeploy.
NO_PROVIDER_RETRY_AFTER = 60


def model_family(model: str) -> str | None:
    """The wire format (provider kind) a well-known model name belongs to, if any."""
    lowered = model.lower()
    for prefix, kind in MODEL_FAMILIES:
        if lowered.startswith(prefix) and (prefix[-1] == "-" or lowered == prefix or
                                           lowered[len(prefix)] in "-."):
            return kind
    return None


@dataclass(frozen=True, slots=True)
class Notice:
    """What the server says at start about unrouted models: a logging level and text."""

    level: int
    message: str


class Router:
    """The targets of a request, from the configured providers and ``[routing]``
    (both read once: a router is made for a configuration, and neither changes)."""

    __slots__ = ("_unrouted", "providers", "settings")

    def __init__(self, providers: Mapping[str, Provider], settings: RoutingSettings
                 ) -> None:
        self.providers = providers
        self.settings = settings
        self._unrouted = self._serves_every_name()

    def __repr__(self) -> str:
        return (f"<Router providers={sorted(self.providers)} "
                f"default={self.default_provider_name()!r}>")

    def targets(self, model: str, provider: str | None = None) -> list[Target]:
        """The targets for ``model`` (and the request's ``provider`` field), in
        fallback order.

        Raises :class:`RequestError`: 400 for an unknown provider, or for a model that
        matches no route when several providers could serve it and none is the
        default; 503 when no provider is configured at all.
        """
        unrouted = self._unrouted
        if unrouted is not None and provider is None and "/" not in model:
            return [Target(unrouted, model)]  # what the rules give such a name
        return self.targets_by_rules(model, provider)

    def targets_by_rules(self, model: str, provider: str | None = None) -> list[Target]:
        """:meth:`targets`, each rule asked in turn."""
        if provider is not None:
            return [Target(self._provider(provider), model)]
        chain = self.settings.fallbacks.get(model)
        if chain:
            return [self._target(spec) for spec in chain]
        alias = self.settings.aliases.get(model)
        if alias:
            return [self._target(alias)]
        name, _, rest = model.partition("/")
        if rest and name in self.providers:
            return [Target(self.providers[name], rest)]
        return [Target(self._default_provider(model), model)]

    def _serves_every_name(self) -> Provider | None:
        """The provider of any model name without a "/" when no alias or fallback
        chain is configured (the default provider, or the only one), else None."""
        settings = self.settings
        if settings.aliases or settings.fallbacks:
            return None
        name = self.default_provider_name()
        return None if name is None else self.providers.get(name)

    def default_provider_name(self) -> str | None:
        """Who serves a model no rule names, whatever its name: the configured
        default, or the only provider; None with several and no default."""
        if self.settings.default_provider:
            return self.settings.default_provider
        if len(self.providers) == 1:
            return next(iter(self.providers))
        return None

    def startup_notice(self) -> Notice:
        """Who serves unrouted models, or that nothing can be served (a warning)."""
        if not self.providers:
            return Notice(logging.WARNING,
                          "no provider is configured: every stream request answers 503 "
                          f"until the server restarts with one; {NO_PROVIDER_HINT}")
        default = self.default_provider_name()
        if default is not None:
            return Notice(logging.INFO, f"models that match no route go to provider "
                                        f"{default!r}")
        return Notice(logging.INFO, "several providers and no routing.default_provider: "
                                    "a model that matches no route and no well-known "
                                    "model family is refused (400)")

    def _default_provider(self, model: str) -> Provider:
        """With several providers and no default, guessing would send a model to
        whoever happens to be listed first (an OpenAI model to Anthropic, say):
        refused instead, unless the name's family has one provider of its format."""
        providers = self.providers
        if len(providers) == 1 and not self.settings.default_provider:  # the only one
            return next(iter(providers.values()))
        if not providers:  # whatever routing.default_provider names
            raise RequestError(NO_PROVIDER_MESSAGE, status=503, error_type="unavailable",
                               headers=[("retry-after", str(NO_PROVIDER_RETRY_AFTER))])
        default = self.default_provider_name()
        if default is not None:
            return self._provider(default)
        by_family = self._provider_by_family(model)
        if by_family is not None:
            return by_family
        raise RequestError(
            f"model {model!r} matches no route and several providers are configured "
            f"({', '.join(sorted(self.providers))}): name one with the \"provider\" field "
            f"or a \"provider/model\" model name, add the model to [routing.aliases] or "
            f"[routing.fallbacks], or set routing.default_provider")

    def _provider_by_family(self, model: str) -> Provider | None:
        """The one configured provider of the wire format a well-known model name
        belongs to (``claude-*`` to the Anthropic-format one, ``gpt-*`` and ``o3`` to
        the OpenAI-format one); None when the name is unknown or that format has
        several providers (an OpenAI-format local server beside OpenAI, say)."""
        kind = model_family(model)
        if kind is None:
            return None
        matching = [p for p in self.providers.values() if p.settings.kind == kind]
        return matching[0] if len(matching) == 1 else None

    def _target(self, spec: str) -> Target:
        name, _, model = spec.partition("/")
        return Target(self._provider(name), model)

    def _provider(self, name: str) -> Provider:
        provider = self.providers.get(name)
        if provider is None:
            raise RequestError(f"unknown provider {name!r}; configured: "
                               f"{', '.join(sorted(self.providers)) or 'none'}")
        return provider
