"""The frames that end a stream whose owner is lost (``owner_lost``), as a reader in
another process sends them: made once per stream, from its formatter before its first
frame, and kept in the stream's meta hash."""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING

from sseserver.events import ErrorEvent
from sseserver.formats.ai_sdk import AISDKFormatter
from sseserver.formats.sse import SSEFormatter

if TYPE_CHECKING:
    from sseserver.formats.base import Formatter

OWNER_LOST = ErrorEvent(type="owner_lost", retryable=True, message=(
    "the server generating this stream stopped before the end; start it again"))

_ID_LINE = re.compile(rb"(?m)^id:[^\n]*\n")


def lost_frames(formatter: Formatter) -> tuple[bytes, bytes, bool]:
    """The error and end frames that end a stream whose owner is lost, without ids
    (the reader numbers them after the last frame it sent), and whether the format
    numbers its frames: made by a copy of the stream's formatter as it was before its
    first frame. The same for every stream of /v1/stream's formats (kept once)."""
    kind = type(formatter)
    known = _LOST.get(kind)
    if known is not None:
        return known
    fresh = copy.deepcopy(formatter)
    error, end = fresh.event(OWNER_LOST), fresh.end()
    numbered = _ID_LINE.search(end) is not None
    frames = _ID_LINE.sub(b"", error), _ID_LINE.sub(b"", end), numbered
    if kind in (SSEFormatter, AISDKFormatter):  # nothing of the request in their frames
        _LOST[kind] = frames
    return frames


_LOST: dict[type, tuple[bytes, bytes, bool]] = {}
