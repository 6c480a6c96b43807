"""The stream log and the memory store, sans-IO."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sseserver.core.stream_log import StreamLog, parse_last_event_id
from sseserver.streams.memory import MemoryStore


def test_frames_are_numbered_from_one_and_replayed_after_an_id() -> None:
    log = StreamLog()
    frames = [b"a" * 10, b"b" * 10, b"c" * 10]
    assert [log.append(f) for f in frames] == [1, 2, 3]
    assert log.since(0) == frames
    assert log.since(2) == [frames[2]]
    assert log.since(3) == []
    assert log.since(-5) == frames
    assert log.bytes == 30 and log.last_id == 3
    assert log.since(1)[0] is frames[1]  # the same bytes object, never a copy


def test_window_slices_by_bytes_but_always_makes_progress() -> None:
    log = StreamLog()
    for size in (10, 10, 100, 10):
        log.append(b"x" * size)
    assert [len(f) for f in log.window(0, 25)] == [10, 10]
    assert [len(f) for f in log.window(2, 25)] == [100]  # one frame even if larger
    assert log.window(4, 25) == []


def test_bounds_and_finish() -> None:
    log = StreamLog(max_events=2, max_bytes=100)
    assert log.has_room(b"x")
    log.append(b"x")
    log.append(b"y")
    assert not log.has_room(b"z")
    log.append(b"past the bound: the end frames")  # allowed, the caller decides
    log.finish()
    with pytest.raises(ValueError):
        log.append(b"late")
    assert not StreamLog(max_bytes=5).has_room(b"123456")
    assert "finished=True" in repr(log)


@pytest.mark.parametrize(("value", "position"), [
    (None, 0), ("", 0), ("  ", 0), ("0", 0), ("17", 17), (" 5 ", 5)])
def test_last_event_id(value: str | None, position: int) -> None:
    assert parse_last_event_id(value) == position


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "9" * 40, "١٢"])
def test_bad_last_event_id(value: str) -> None:
    with pytest.raises(ValueError):
        parse_last_event_id(value)


def test_memory_store_retention() -> None:
    store: MemoryStore[str] = MemoryStore(retention=10)
    store.add("a", "stream a")
    store.add("b", "stream b")
    assert store.get("a") == "stream a" and store.get("zz") is None
    store.mark_ended("a", now=100)
    store.mark_ended("a", now=105)  # the first end counts
    assert store.expire(now=109) == []
    assert store.expire(now=110) == ["a"]
    assert store.get("a") is None and store.get("b") == "stream b"  # b is still running
    assert len(store) == 1 and "streams=1" in repr(store)


def test_window_agrees_with_a_walk_over_the_frames() -> None:
    log = StreamLog()
    sizes = [(n * 37) % 90 + 1 for n in range(300)]
    for size in sizes:
        log.append(b"x" * size)
    for start in range(0, 301, 7):
        for limit in (1, 50, 90, 91, 500, 10_000):
            end, total = start, 0
            while end < len(sizes) and (end == start or total + sizes[end] <= limit):
                total += sizes[end]
                end += 1
            assert [len(f) for f in log.window(start, limit)] == sizes[start:end]


def test_window_cost_does_not_grow_with_the_slice() -> None:
    """A 64 KiB slice of 45-byte frames was a walk over 1,450 of them (the replay of
    1,000 readers took seconds, 0.5 ms a slice); now a bisection: 5,000 slices of
    ~1,450 frames each in well under a second (the walk took 2-3 s)."""
    import time

    log = StreamLog(max_events=60_000)
    frame = b"x" * 45
    for _ in range(60_000):
        log.append(frame)
    started = time.perf_counter()
    for n in range(5_000):
        log.window((n * 29) % 58_000, 64 * 1024)
    assert time.perf_counter() - started < 0.5


# -- a finished log is compacted; every answer stays the same -----------------------

frame_lists = st.lists(st.binary(min_size=1, max_size=90), max_size=60)


def twins(frames: list[bytes]) -> tuple[StreamLog, StreamLog]:
    """The same frames in a running log and in a finished (compacted) one."""
    running, finished = StreamLog(), StreamLog()
    for frame in frames:
        assert running.append(frame) == finished.append(frame)
    finished.finish()
    return running, finished


def answers(log: StreamLog, frames: list[bytes], max_bytes: int) -> list[object]:
    count = len(frames)
    return [
        len(log), log.last_id, log.bytes, log.has_room(b"x" * max_bytes),
        *(log.since(last_id) for last_id in range(-2, count + 3)),
        *(log.bytes_after(last_id) for last_id in range(count + 1)),
        *(log.window(start, max_bytes) for start in range(count + 2)),
        *(log.window_bytes(start, max_bytes) for start in range(count + 2)),
    ]


@given(frames=frame_lists, max_bytes=st.integers(1, 400))
def test_a_compacted_log_answers_as_the_running_one(frames: list[bytes],
                                                    max_bytes: int) -> None:
    running, finished = twins(frames)
    assert answers(finished, frames, max_bytes) == answers(running, frames, max_bytes)
    assert repr(finished) == repr(running).replace("finished=False", "finished=True")
    # and both as the frames say: a replay after any id is the bytes that followed it
    for last_id in range(len(frames) + 1):
        assert b"".join(finished.since(last_id)) == b"".join(frames[last_id:])


@given(frames=frame_lists, max_bytes=st.integers(1, 400))
def test_window_bytes_is_the_window_joined(frames: list[bytes], max_bytes: int) -> None:
    for log in twins(frames):
        for start in range(len(frames) + 2):
            window = log.window(start, max_bytes)
            assert log.window_bytes(start, max_bytes) == (len(window), b"".join(window))


def test_a_live_frame_alone_is_sent_as_the_object_appended() -> None:
    log = StreamLog()
    frame = b"id: 1\ndata: x\n\n"
    log.append(frame)
    assert log.window_bytes(0, 1)[1] is frame


def test_finishing_twice_changes_nothing() -> None:
    log = StreamLog()
    log.append(b"a")
    log.finish()
    log.finish()
    assert log.since(0) == [b"a"] and log.finished


def test_a_finished_log_holds_its_bytes_and_an_index_not_an_object_per_frame() -> None:
    frames = [b'id: %d\ndata: {"content":"tok%d "}\n\n' % (n, n) for n in range(1, 46)]
    logs = []
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(200):
            log = StreamLog()
            for frame in frames:
                log.append(b"%b" % frame)  # each its own object, as a formatter's are
            log.finish()
            logs.append(log)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] / len(logs)
    finally:
        tracemalloc.stop()
    size = logs[0].bytes
    # the frames end to end, 4 bytes of index a frame, and a few small objects; a
    # running log adds ~50 bytes a frame (a bytes object each, a list, 8-byte offsets)
    assert held < size + 4 * len(frames) + 600, (held, size)
    assert not any(isinstance(o, list) and o for o in gc.get_referents(logs[0]))
