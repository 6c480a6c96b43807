"""The event-stream parser with its per-token shortcut for CRLF line endings.

Some providers (Gemini's ``streamGenerateContent?alt=sse``) end every line with CRLF:
``data: {...}\\r\\n\\r\\n``. The general path of :class:`SSEParser` reads that correctly
but line by line; this subclass takes such a read whole, as the base class takes the
LF-only one, and hands every other read to the base class unchanged.
"""

from __future__ import annotations

from sseserver.core.sse import SSEParser

_CRLF_END = b"\r\n\r\n"


class CRLFEventParser(SSEParser):
    __slots__ = ()

    def feed_data_line(self, chunk: bytes) -> str | None:
        """One whole ``data: `` line ended by CRLF CRLF, nothing pending before it:
        its data. Its only CR and LF are the four that end it, so the general path
        would give this same one event. Otherwise what the base class gives."""
        end = len(chunk) - 4
        if self._at_boundary and chunk.startswith(b"data: ") and \
                chunk.find(b"\r") == end and chunk.find(b"\n") == end + 1 and \
                chunk.endswith(_CRLF_END):
            self.last_event_id = self._id  # §2.5, as the general path does
            self._started = True
            try:
                return chunk[6:end].decode()
            except UnicodeDecodeError:  # §2.1: invalid sequences become U+FFFD
                return chunk[6:end].decode("utf-8", "replace")
        return super().feed_data_line(chunk)
