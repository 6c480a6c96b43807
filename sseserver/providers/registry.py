"""Provider kinds by name: the wire format a configured provider speaks."""

from __future__ import annotations

from collections.abc import Callable

from sseserver.config import ProviderSettings
from sseserver.errors import ConfigError
from sseserver.providers.anthropic import AnthropicProvider
from sseserver.providers.azure import AzureOpenAIProvider
from sseserver.providers.base import Provider
from sseserver.providers.bedrock import BedrockProvider
from sseserver.providers.gemini import GeminiProvider
from sseserver.providers.ollama import OllamaProvider
from sseserver.providers.openai import OpenAIProvider
from sseserver.providers.openai_responses import OpenAIResponsesProvider

KINDS: dict[str, Callable[[ProviderSettings], Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "openai-responses": OpenAIResponsesProvider,
    "azure-openai": AzureOpenAIProvider,
    "ollama": OllamaProvider,
    "gemini": GeminiProvider,
    "bedrock": BedrockProvider,
}


def make_provider(settings: ProviderSettings) -> Provider:
    """A provider for ``settings``. Raises :class:`ConfigError` for an unknown kind."""
    factory = KINDS.get(settings.kind)
    if factory is None:
        raise ConfigError(f"provider {settings.name!r}: unknown kind {settings.kind!r} "
                          f"(known: {', '.join(sorted(KINDS))})")
    return factory(settings)
