"""MessageFormatter writes what Formatter("%(message)s") writes, for every record;
LineHandler writes what StreamHandler writes, each line in the file at once."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import orjson
import pytest

from sseserver import stream_end
from sseserver.stream_end import LineHandler, MessageFormatter, log_streams_directly


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


def _log_through(handler: logging.Handler, *records: logging.LogRecord) -> None:
    handler.setFormatter(MessageFormatter())
    for record in records:
        handler.handle(record)


@pytest.mark.parametrize("buffering", [1, 1 << 16])  # line-buffered as stderr, or not
def test_line_handler_writes_what_stream_handler_writes_and_each_line_is_in_the_file(
        tmp_path: Path, buffering: int) -> None:
    records = [make() for make in RECORDS]
    written = {}
    for name, handler_type in (("general", logging.StreamHandler), ("line", LineHandler)):
        path = tmp_path / name
        with path.open("w", buffering=buffering) as stream:
            handler = handler_type(stream)
            for record in records:
                _log_through(handler, record)
                # in the file when the call returns, read through another descriptor
                assert path.read_text().endswith(record.getMessage() + "\n") or \
                    record.exc_info or record.stack_info
            written[name] = path.read_text()
    assert written["line"] == written["general"]
    assert "ValueError: broken" in written["line"]


def test_line_handler_with_another_terminator_flushes_as_stream_handler(
        tmp_path: Path) -> None:
    path = tmp_path / "log"
    with path.open("w", buffering=1) as stream:
        handler = LineHandler(stream)
        handler.terminator = " | "
        _log_through(handler, _record("one"), _record("two"))
        assert path.read_text() == "one | two | "


def test_line_handler_reports_a_failed_write_as_stream_handler_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(io.StringIO):
        line_buffering = True

        def write(self, text: str) -> int:
            raise OSError("disk full")

    reported: list[logging.LogRecord] = []
    handler = LineHandler(Broken())
    monkeypatch.setattr(handler, "handleError", reported.append)
    record = _record("lost")
    _log_through(handler, record)
    assert reported == [record]


class _Lines(io.StringIO):
    line_buffering = True  # as stderr: LineHandler writes without its flush


def _drop_second(record: logging.LogRecord) -> bool:
    return record.getMessage() != "two"


def _shout(record: logging.LogRecord) -> logging.LogRecord:
    copy = logging.makeLogRecord(record.__dict__)
    copy.msg = str(record.msg).upper()
    return copy


@pytest.mark.parametrize("filters", [[], [_drop_second], [_shout], [_drop_second, _shout]])
def test_line_handler_handles_as_handler_handle_does(filters: list[object]) -> None:
    """Its handle: the same verdict and lines as logging.Handler.handle, with filters
    and without, and the handler's lock held while it writes."""
    out = {}
    for name, handle in (("general", logging.Handler.handle), ("line", LineHandler.handle)):
        stream = _Lines()
        handler = LineHandler(stream)
        handler.setFormatter(MessageFormatter())
        for log_filter in filters:
            handler.addFilter(log_filter)  # type: ignore[arg-type]
        locked: list[bool] = []
        emit = handler.emit
        handler.emit = lambda record, emit=emit, handler=handler, locked=locked: (  # type: ignore[method-assign]
            locked.append(handler.lock._is_owned()), emit(record))[1]  # type: ignore[union-attr]
        verdicts = [bool(handle(handler, _record(text))) for text in ("one", "two")]
        out[name] = (verdicts, stream.getvalue(), locked)
    assert out["line"] == out["general"]
    assert all(out["line"][2])


def test_the_streams_logger_writes_through_the_roots_one_handler_directly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As the CLI configures logging: the streams logger gets the root's one handler
    and propagates no more, so each line is written once, the same; with other
    handlers on the root (a process that configured logging itself) nothing changes."""
    root, streams = logging.getLogger(), stream_end.logger
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(streams, "handlers", [])
    monkeypatch.setattr(streams, "propagate", True)
    monkeypatch.setattr(root, "level", logging.INFO)
    streams.manager._clear_cache()
    text = _Lines()
    handler = LineHandler(text)
    handler.setFormatter(MessageFormatter())
    other = logging.StreamHandler(io.StringIO())
    root.handlers = [handler, other]
    log_streams_directly(handler)
    assert streams.handlers == [] and streams.propagate
    root.handlers = [handler]
    streams.info("before")
    log_streams_directly(handler)
    assert streams.handlers == [handler] and not streams.propagate
    streams.info("after")
    logging.getLogger("sseserver.http").info("another logger")
    assert text.getvalue() == "before\nafter\nanother logger\n"
    streams.manager._clear_cache()
