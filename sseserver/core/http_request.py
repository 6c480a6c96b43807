"""The names the request reader had here, kept importable: requests are read by h11
through core/h11_server.py."""

from sseserver.core.h11_server import (
    BODY_SLICE,
    CONNECTION_CLOSED,
    END_OF_MESSAGE,
    HEAD_SLICE,
    NEED_DATA,
    PAUSED,
    Event,
    ReaderState,
    RequestHead,
    RequestReader,
    Signal,
)

__all__ = ["BODY_SLICE", "CONNECTION_CLOSED", "END_OF_MESSAGE", "HEAD_SLICE", "NEED_DATA",
           "PAUSED", "Event", "ReaderState", "RequestHead", "RequestReader", "Signal"]
