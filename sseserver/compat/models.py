"""``GET /v1/models``: what routing serves, in the OpenAI list shape (or Anthropic's,
for a client that sends ``anthropic-version``, as the anthropic SDK does).

Listed: each alias and fallback chain of ``[routing]``, and each ``provider/model``
they name (a model name that routes as it is). A provider serves more models than
the configuration names, but which is its own business: the gateway lists only what
it knows it routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sseserver.config import RoutingSettings

# "created" of every entry: the configuration has no date, and 0 says so.
CREATED = 0
GATEWAY_OWNER = "sseserver"  # owner of a fallback chain, which spans providers


def routed_models(routing: RoutingSettings, providers: Iterable[str]
                  ) -> list[tuple[str, str]]:
    """(model id, owner) pairs, each id once, in configuration order."""
    known = set(providers)
    found: dict[str, str] = {}
    for name, target in routing.aliases.items():
        found.setdefault(name, target.partition("/")[0])
    for name in routing.fallbacks:
        found.setdefault(name, GATEWAY_OWNER)
    targets = [*routing.aliases.values(), *(t for c in routing.fallbacks.values() for t in c)]
    for target in targets:
        provider = target.partition("/")[0]
        if provider in known:
            found.setdefault(target, provider)
    return list(found.items())


def models_list(routing: RoutingSettings, providers: Mapping[str, Any], anthropic: bool
                ) -> dict[str, Any]:
    models = routed_models(routing, providers)
    if anthropic:
        data = [{"type": "model", "id": model, "display_name": model,
                 "created_at": "1970-01-01T00:00:00Z"} for model, _ in models]
        return {"data": data, "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}
    return {"object": "list", "data": [
        {"id": model, "object": "model", "created": CREATED, "owned_by": owner}
        for model, owner in models]}
