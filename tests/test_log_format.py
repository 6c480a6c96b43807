"""MessageFormatter writes what Formatter("%(message)s") writes, for every record."""

from __future__ import annotations

import logging
import sys

import orjson
import pytest

from sseserver.log_format import MessageFormatter


def _record(msg: object, args: tuple[object, ...] = (), *, exc: bool = False,
            stack: str | None = None) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("broken")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("sseserver.streams", logging.INFO, "(unknown file)", 0, msg,
                             args, exc_info, sinfo=stack)


RECORDS = [
    lambda: _record(orjson.dumps({"event": "stream_end", "id": "abc", "key": None,
                                  "ttft_ms": 12.34}).decode()),
    lambda: _record("listening on %s:%d", ("127.0.0.1", 8080)),
    lambda: _record("a %(name)s mapping", ({"name": "dict"},)),
    lambda: _record(ValueError("a message that is not a str")),
    lambda: _record(""),
    lambda: _record("with a traceback", exc=True),
    lambda: _record("with a stack", stack="Stack (most recent call last):\n  here"),
    lambda: _record("%s and a stack", ("args",), exc=True, stack="Stack:\n  there"),
]


@pytest.mark.parametrize("make", RECORDS)
def test_message_formatter_writes_what_the_message_format_writes(make) -> None:
    general, fast = make(), make()
    fast.exc_info = general.exc_info  # the same traceback for both
    assert MessageFormatter().format(fast) == logging.Formatter("%(message)s").format(general)
    assert fast.message == general.message  # set as Formatter.format sets it
    assert fast.exc_text == general.exc_text


def test_a_record_formatted_twice_keeps_its_traceback() -> None:
    record = _record("failed", exc=True)
    first = MessageFormatter().format(record)
    record.exc_info = None  # a handler after the first may clear it; exc_text stays
    assert MessageFormatter().format(record) == first
    assert "ValueError: broken" in first
