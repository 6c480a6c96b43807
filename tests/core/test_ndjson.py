"""The NDJSON line reader: whole lines out of reads cut anywhere, each bound enforced."""

from __future__ import annotations

import random

import pytest

from sseserver.core.ndjson import NDJSONReader
from sseserver.errors import EventTooLarge, NoEvents

BODY = ('{"a":1}\n{"text":"h\\u00e9 \u00e9\U0001f60a"}\r\n\n  \n{"done":true}\n'
        ).encode()
LINES = ['{"a":1}', '{"text":"h\\u00e9 \u00e9\U0001f60a"}', '{"done":true}']


def read_all(reader: NDJSONReader, reads: list[bytes]) -> list[str]:
    """As the relay reads: the one-line shortcut first, then the general reading."""
    lines: list[str] = []
    for read in reads:
        line = reader.feed_data_line(read)
        lines.extend([line] if line is not None else reader.feed_data_lines(read))
    return lines


def test_whole_lines_in_one_read() -> None:
    assert read_all(NDJSONReader(), [BODY]) == LINES


@pytest.mark.parametrize("seed", range(20))
def test_any_split_gives_the_same_lines(seed: int) -> None:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(BODY)), rng.randint(1, len(BODY) - 1)))
    reads = [BODY[a:b] for a, b in zip([0, *cuts], [*cuts, len(BODY)], strict=True)]
    assert read_all(NDJSONReader(), reads) == LINES


def test_the_per_token_read_takes_the_shortcut_only_when_nothing_is_pending() -> None:
    reader = NDJSONReader()
    assert reader.feed_data_line(b'{"a":1}\n') == '{"a":1}'
    assert reader.feed_data_line(b'{"a":1}\n{"b":2}\n') is None  # two lines
    assert reader.feed_data_line(b'{"a":1}\r\n') is None  # CRLF: the general reading
    assert reader.feed_data_lines(b'{"a"') == []
    assert reader.feed_data_line(b'{"b":2}\n') is None  # a line is pending
    assert reader.feed_data_lines(b':1}\n') == ['{"a":1}']


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert NDJSONReader().feed_data_lines(b'{"t":"\xff"}\n') == ['{"t":"\ufffd"}']


def test_a_last_line_without_lf_is_kept_for_close() -> None:
    reader = NDJSONReader()
    assert reader.feed_data_lines(b'{"a":1}\n{"done":true}') == ['{"a":1}']
    assert reader.close() == '{"done":true}'
    assert reader.close() is None


def test_a_line_past_its_bound_is_refused_in_small_reads() -> None:
    reader = NDJSONReader(max_line_bytes=100)
    reader.feed_data_lines(b'{"a":"' + b"x" * 60)
    with pytest.raises(EventTooLarge):
        for _ in range(10):
            reader.feed_data_lines(b"x" * 20)


def test_a_line_past_its_bound_is_refused_when_it_ends_a_read_unfinished() -> None:
    with pytest.raises(EventTooLarge):
        NDJSONReader(max_line_bytes=100).feed_data_lines(b'{"a":1}\n' + b"x" * 101)


def test_blank_lines_past_their_bound_are_refused() -> None:
    reader = NDJSONReader(max_bytes_without_event=100)
    reader.feed_data_lines(b"\n" * 60)
    assert reader.feed_data_lines(b'{"a":1}\n') == ['{"a":1}']  # a line resets the count
    reader.feed_data_lines(b"  \n" * 30)
    with pytest.raises(NoEvents):
        reader.feed_data_lines(b"\r\n" * 20)
