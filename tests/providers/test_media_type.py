"""A 200's Content-Type read once a value: the same verdict, read fresh or again, for
any value, and a table that never grows past its bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.providers import errors
from sseserver.providers.errors import EVENT_STREAM, NDJSON_MEDIA_TYPES, is_event_stream

LABELS = st.one_of(
    st.sampled_from(["text/event-stream", "text/event-stream; charset=utf-8",
                     " Text/Event-Stream ;x=1", "application/json", "", ";", "text/html",
                     "application/x-ndjson", "TEXT/EVENT-STREAM"]),
    st.text(max_size=30))


def fresh_verdict(value: str, media_types: tuple[str, ...] | frozenset[str]) -> bool:
    given = value.partition(";")[0].strip().lower()
    return not given or given in media_types


@settings(max_examples=300, deadline=None)
@given(values=st.lists(LABELS, min_size=1, max_size=80), encoded=st.booleans())
def test_a_content_type_read_again_gets_the_verdict_read_fresh(values: list[str],
                                                               encoded: bool) -> None:
    for media_types in ((EVENT_STREAM,), NDJSON_MEDIA_TYPES):
        for value in values + values:  # each read fresh, then from the table
            headers = {"content-type": value}
            if encoded:
                headers["content-encoding"] = "gzip"
            expected = fresh_verdict(value, media_types) and not encoded
            assert is_event_stream(headers, media_types) is expected, value
            assert len(errors._media_types) <= errors._MAX_MEDIA_TYPES
