"""The fake provider: a real HTTP server speaking the OpenAI and Anthropic streams."""

from sseserver.fake.server import FakeProvider, FakeStats, serve_fake_provider

__all__ = ["FakeProvider", "FakeStats", "serve_fake_provider"]
