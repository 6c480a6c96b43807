"""The compatible endpoints' side of the gateway: what differs in how their streams
are run."""

from __future__ import annotations

from typing import Any

from sseserver.compat.api import CompatAPI
from sseserver.compat.errors import compat_status
from sseserver.errors import UpstreamError
from sseserver.failures import client_status
from sseserver.relay import Relay


class CompatRelay(Relay):
    """A relay whose failure before the response head takes the status the compatible
    API gives it (an overloaded provider: Anthropic's 529, OpenAI's 503), so that each
    SDK raises the class a program catches for it. Everything else is the relay's."""

    __slots__ = ("api",)

    def __init__(self, api: CompatAPI, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = api

    def _respond_error(self, error: UpstreamError, error_type: str, message: str) -> None:
        status, headers = client_status(error)
        self._output.respond_error(
            compat_status(self.api.name, status, error.status), headers,
            {"error": {"type": error_type, "message": message}})
