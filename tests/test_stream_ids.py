"""Stream ids: secrets.token_urlsafe's form, unique, and a forked process's its own."""

from __future__ import annotations

import base64
import os
import re

import pytest

from sseserver import stream_ids

# 16 bytes in URL-safe base64 without padding: 22 characters, the last of which holds
# two bits (A, Q, g or w), as secrets.token_urlsafe(16) makes them.
_ID = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]")


def test_ids_have_the_form_and_bits_of_token_urlsafe() -> None:
    ids = [stream_ids.new_stream_id() for _ in range(stream_ids.IDS_PER_READ * 3 + 5)]
    assert all(_ID.fullmatch(stream_id) for stream_id in ids)
    assert len(set(ids)) == len(ids)
    decoded = [base64.urlsafe_b64decode(stream_id + "==") for stream_id in ids]
    assert {len(raw) for raw in decoded} == {stream_ids.RANDOM_BYTES}


def test_a_worker_prefixes_its_ids() -> None:
    stream_ids.set_owner(stream_ids.Owner(2, 5))
    try:
        slot, incarnation, token = stream_ids.new_stream_id().split(".")
    finally:
        stream_ids.set_owner(None)
    assert (slot, incarnation) == ("2", "5") and _ID.fullmatch(token)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_never_hands_out_its_parents_ids() -> None:
    stream_ids.new_stream_id()  # the parent holds unused ids now
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(writer, " ".join(stream_ids.new_stream_id() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        child_ids = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent_ids = {stream_ids.new_stream_id() for _ in range(stream_ids.IDS_PER_READ)}
    assert len(child_ids) == 8 and not child_ids & parent_ids
