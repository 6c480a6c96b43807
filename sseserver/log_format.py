"""The server's log lines: the message alone, one line each.

Every line the server writes is its message (the ``stream_end`` line is a JSON
object). :class:`MessageFormatter` writes exactly what ``Formatter("%(message)s")``
writes, without the format string's dictionary lookup and the formatter's checks for
a traceback when the record carries none; a record with one goes the general way.
"""

from __future__ import annotations

import logging


class MessageFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        # set as Formatter.format sets it: a filter or handler after this may read it
        record.message = message = record.getMessage()
        return message
