"""The server's log lines: the message alone, one line each.

Every line the server writes is its message (the ``stream_end`` line is a JSON
object). :class:`MessageFormatter` writes exactly what ``Formatter("%(message)s")``
writes, without the format string's dictionary lookup and the formatter's checks for
a traceback when the record carries none; a record with one goes the general way.
:class:`LineHandler` writes each line to a line-buffered stream (stderr is one)
without flushing it again after the write did.
"""

from __future__ import annotations

import logging
from typing import TextIO


class MessageFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        # set as Formatter.format sets it: a filter or handler after this may read it
        record.message = message = record.getMessage()
        return message


class LineHandler(logging.StreamHandler[TextIO]):
    """A :class:`logging.StreamHandler` whose line, on a line-buffered stream, is in
    the file when the write returns: the handler's flush after it (a lock and a call
    that find nothing to write) is left out. Any other stream or terminator is written
    and flushed as StreamHandler does; ``flush()`` itself flushes as ever."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = self.stream
        if self.terminator != "\n" or not getattr(stream, "line_buffering", False):
            super().emit(record)
            return
        try:
            stream.write(self.format(record) + "\n")
        except RecursionError:  # as StreamHandler.emit: not a handler's error to report
            raise
        except Exception:
            self.handleError(record)
