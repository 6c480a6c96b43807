"""A stream's body turned into client frames, sans-IO: upstream body bytes in, frames
out (DESIGN.md §4).

Driving contract. A :class:`Pump` serves one stream for its whole life, attempt after
attempt, with the stream's one formatter (its frame numbering spans them):

- :meth:`Pump.begin` starts reading a body with an attempt's reader and adapter.
- the upstream connection then drives the pump as its body sink: :meth:`on_body` with
  each decoded piece of the body, then :meth:`on_body_end` or :meth:`on_body_error`.
  Each read's frames go to the output in one write (``output.write`` or, for the one
  frame of a token, ``output.write_frame``), but those of the read in which the
  provider finished: they lead the stream's last frames (:meth:`end_frames`), so
  that the client gets them and the end in one write.
- until the first content event the stream is not committed: other events are held,
  and the first content event commits it (the driver's ``on_commit`` opens the
  response and says the stream's metadata), writing the ``metadata`` frame and the
  held events before it.
- when the body ends, well or not, the driver's ``on_settled`` hears it once: None
  (the provider finished), the :class:`UpstreamError` that ended it (the frames before the fault
  were written first), or :class:`NotAStream` (the 200 was an error document, to be
  read as one from its start).
- :meth:`failure_frames` and :meth:`end_frames` give a stream's last frames; the
  driver sends them. :meth:`stop` stops listening.

Once the stream has committed and its text chunks have a known shape, a text token
read alone takes the text lane: the data line, the chunk's text and the frame at once,
in this one call, by what the reader, the adapter and the formatter promise (their
``data_event_framing``, ``text_chunk_shape`` and ``text_template``), no call of theirs
a token. Any other read closes the lane: a read of one whole data event takes the
reader's whole-data-line shortcut, the adapter's bare-text shortcut, the formatter's
text frame, one write. A read of several whole events (a burst) reads its text chunks
as the lane does and its other events by those shortcuts, and writes once. Every other
read takes the general path: the reader's events, the adapter's events, the
formatter's frames. :class:`ReferencePump` is the general path alone; tests prove
both give the same frames for any cut of a recorded body (tests/test_pump.py), and
the lane the same frames and state at each read that must close it
(tests/test_pump_lane.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from orjson import JSONDecodeError

from sseserver.core.sse import NotAnEventStream, SSEParser
from sseserver.errors import ProviderError, RemoteProtocolError, SSEServerError, UpstreamError
from sseserver.events import CONTENT_EVENTS, ErrorEvent, NormalizedEvent, TextDelta, Usage
from sseserver.failures import body_fault
from sseserver.formats.base import Formatter
from sseserver.lane import LANE_TRIES, LaneReading, _BurstCut, _Lane
from sseserver.providers.base import EventReader, StreamAdapter


class FrameOutput(Protocol):
    """Where a pump's frames go (the stream's :class:`sseserver.output.Output`)."""

    def write(self, frames: list[bytes]) -> None: ...

    def write_frame(self, frame: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class NotAStream:
    """The body labelled an event stream is some other document: ``start`` is what
    was read of it."""

    start: bytes


class PumpDriver(Protocol):
    """What a pump tells the one who drives it (the relay)."""

    def on_commit(self) -> dict[str, Any]:
        """The stream commits (its first content event is going out): open the
        response; the answer is the ``metadata`` frame's content."""
        ...

    def on_settled(self, result: UpstreamError | NotAStream | None) -> None:
        """The body ended: well (None), with an error, or as no event stream at all."""
        ...

    def on_unreadable(self, exc: Exception) -> None:
        """The adapter met data of a wrong shape (not an error of the package's own):
        the body ends with a generic error; this is the chance to log what it was."""
        ...


class _Unread:
    """The adapter of a pump before its first body: nothing reads it."""

    finished = False

    def usage_so_far(self) -> Usage | None:
        return None


_UNREAD = _Unread()
# What a pump reads with before its first body: never fed (a body comes with its own).
_NO_BODY_YET = SSEParser()


_loads = orjson.loads
_dumps = orjson.dumps


class Pump(LaneReading):
    # Slots: a token's read touches this object, one of thousands; a dict of its
    # attributes would be more memory to miss in the cache.
    # Every open stream holds one, idle or not: what the driver knows (the stream's
    # id, its target) is asked of it rather than kept twice.
    __slots__ = ("_adapter", "_driver", "_flowing", "_formatter", "_held", "_lane",
                 "_lane_burst_cut", "_lane_tries", "_last", "_output", "_reader",
                 "_write_frame", "committed", "events", "silent_events", "usage")

    def __init__(self, formatter: Formatter, output: FrameOutput, driver: PumpDriver
                 ) -> None:
        self._formatter = formatter
        self._output = output
        self._write_frame = output.write_frame  # looked up again once committed
        self._driver = driver
        self._reader: EventReader = _NO_BODY_YET
        self._adapter: StreamAdapter = _UNREAD  # type: ignore[assignment]
        # Non-content events before the commit; a list only once there is one (most
        # streams have none, and an idle stream should hold little).
        self._held: list[NormalizedEvent] | None = None
        # The frames of the read in which the provider finished: they go out with the
        # stream's last frames (end_frames, failure_frames), one write for both.
        self._last: list[bytes] | None = None
        self._flowing = False  # a body is being read; on_settled not yet called
        self._lane: _Lane | None = None  # the text lane, while open
        # the lane's reading of a burst's lines, from the same promises, while open
        self._lane_burst_cut: _BurstCut | None = None
        self._lane_tries = 0  # times left to try opening it, for the body being read
        self.committed = False
        self.events = 0  # frames made
        self.silent_events = 0  # upstream events that made no frame (pings, held ones)
        self.usage: Usage | None = None

    def __repr__(self) -> str:
        return (f"<Pump committed={self.committed} "
                f"flowing={self._flowing} events={self.events}>")

    @property
    def progress(self) -> int:
        """Upstream events so far, for the upstream's idle limit: those that made a
        frame and those that made none. Bytes that carry no event are no progress."""
        return self.events + self.silent_events

    @property
    def finished(self) -> bool:
        """The provider said its last word in the body being read (or the last)."""
        return self._adapter.finished

    def begin(self, reader: EventReader, adapter: StreamAdapter) -> None:
        """Read a body with this attempt's ``reader`` and ``adapter``."""
        self._reader = reader
        self._adapter = adapter
        self._flowing = True
        self._lane = None
        self._lane_tries = LANE_TRIES

    def stop(self) -> None:
        """Stop reading: a body still flowing is settled as over (``on_settled(None)``,
        for the driver to let its connection go)."""
        self._settle(None)

    # -- the body sink: upstream body bytes to client frames -----------------------

    def on_body(self, data: bytes) -> None:
        lane = self._lane
        if lane is not None:  # a committed text token, read here alone (see _Lane)
            prefix, suffix, start, end, template, numbered = lane
            # an LF in the text: a read of several events (a burst), no JSON string
            if data.startswith(prefix) and data.endswith(suffix) and \
                    10 not in (text := data[start:end]):
                try:
                    content = _loads(text)
                except JSONDecodeError:  # no JSON string: the general path says what
                    content = None
                # One byte a character and its quotes (plain): ASCII with no escape
                # and no blank, which orjson writes as it is; otherwise orjson's own.
                # A CR among the blanks JSON allows is a line break to the reader.
                if type(content) is str and content and \
                        ((plain := len(text) == len(content) + 2) or 13 not in text):
                    if not plain:
                        text = _dumps(content)
                    if numbered:
                        formatter = self._formatter
                        formatter.last_id = number = formatter.last_id + 1  # type: ignore[attr-defined]
                        frame = template % (number, text)
                    else:
                        frame = template % text
                    self.events += 1
                    try:
                        self._write_frame(frame)
                    except Exception as exc:  # as the general path's write
                        self._fault(exc, data, [])
                    return
            elif data.startswith(prefix) and self._lane_burst(data, lane):
                return
            self._lane = None  # until the reader, adapter and formatter allow it again
            # (or the read is a burst of the lane's text tokens alone: see _burst)
        adapter = self._adapter
        frames: list[bytes] = []
        try:
            line = self._reader.feed_data_line(data)
            if line is not None:  # one whole "data:" event: the per-token read
                result = adapter.feed_message(line)
                if type(result) is not str:
                    self._frames(result, frames)
                elif self.committed:  # a text delta: the fewest steps
                    self.events += 1
                    self._write_frame(self._formatter.text(result))
                    if self._lane_tries:
                        self._open_lane()
                    return
                else:  # the first: what _frame does with its TextDelta, without one
                    self.commit(frames)
                    frames.append(self._formatter.text(result))
                    self.events += 1
        except Exception as exc:  # whatever the provider sent: this stream ends, cleanly
            self._fault(exc, data, frames)
            return
        if line is None:  # several events, or an event cut across reads
            self._read_events(data, frames, lane)
        elif adapter.finished:
            self._finished_with(frames)
        elif frames:
            self._output.write(frames)

    def _read_events(self, data: bytes, frames: list[bytes], lane: _Lane | None) -> None:
        """A read of several whole events (a burst), or any other the shortcuts leave
        (an event cut across reads, a named event), its frames after ``frames`` (a
        burst's lane tokens, if any); then one write, or the end's."""
        try:
            if (lines := self._reader.feed_data_lines(data)) is not None:
                self._burst(lines, frames, lane)
            else:
                self._general(data, frames)
        except Exception as exc:  # whatever the provider sent: this stream ends, cleanly
            self._fault(exc, data, frames)
            return
        if self._adapter.finished:
            self._finished_with(frames)
        elif frames:
            self._output.write(frames)

    def _general(self, data: bytes, frames: list[bytes]) -> None:
        """A read the reader's shortcuts leave (an event cut across reads, a named
        event): its events, the unnamed ones still by the adapter's shortcuts."""
        adapter = self._adapter
        for sse in self._reader.feed(data):
            if sse.event == "message":
                result = adapter.feed_message(sse.data)
                self._frames([TextDelta(result)] if type(result) is str else result, frames)
            else:
                self._frames(adapter.feed(sse.event, sse.data), frames)
            if adapter.finished:
                return

    def on_body_end(self) -> None:
        if not self._flowing:
            return
        adapter = self._adapter
        frames: list[bytes] = []
        if not adapter.finished:
            try:  # the last event, if only its blank line is missing
                for sse in self._reader.end():
                    self._frames(adapter.feed(sse.event, sse.data), frames)
            except Exception as exc:
                self._flush(frames)
                self._settle(self._body_fault(exc))
                return
        if adapter.finished:
            self._finished_with(frames)
        else:
            self._flush(frames)
            self._settle(UpstreamError("provider ended the stream before it was complete"))

    def _finished_with(self, frames: list[bytes]) -> None:
        """The provider finished in the read that made ``frames``: they are kept for
        the stream's last frames (the driver asks for them next), then the body is
        settled as over."""
        self._last = frames
        self._settle(None)

    def on_body_error(self, error: UpstreamError) -> None:
        self._settle(error)

    def _settle(self, result: UpstreamError | NotAStream | None) -> None:
        if self._flowing:
            self._flowing = False
            self._driver.on_settled(result)

    def _fault(self, exc: Exception, data: bytes, frames: list[bytes]) -> None:
        """A read could not be relayed whole: what came before the fault is the
        client's (``frames``, and the events the reader completed before a bound
        broke), then the body ends, or is read as the error it is."""
        adapter = self._adapter
        if isinstance(exc, RemoteProtocolError) and exc.read_before:
            try:
                for sse in exc.read_before:
                    self._frames(adapter.feed(sse.event, sse.data), frames)
                    if adapter.finished:  # the provider's end came before the fault
                        self._flush(frames)
                        self._settle(None)
                        return
            except Exception as later:  # an event before the bound was malformed itself
                exc = later
        self._flush(frames)
        if type(exc) is NotAnEventStream:
            self._settle(NotAStream(data))
        else:
            self._settle(self._body_fault(exc))

    def _body_fault(self, exc: Exception) -> UpstreamError:
        if not isinstance(exc, SSEServerError):
            self._driver.on_unreadable(exc)  # the adapter met data of a wrong shape
        return body_fault(exc)

    # -- events to frames ----------------------------------------------------------

    def _frames(self, events: list[NormalizedEvent], frames: list[bytes]) -> None:
        if not events:
            self.silent_events += 1
        for event in events:
            self._frame(event, frames)

    def _frame(self, event: NormalizedEvent, frames: list[bytes]) -> None:
        if type(event) is ErrorEvent:
            raise ProviderError(event.message, retryable=event.retryable,
                                status=event.status, error_type=event.type)
        if not self.committed:
            if not isinstance(event, CONTENT_EVENTS):
                if self._held is None:
                    self._held = []
                self._held.append(event)
                self.silent_events += 1
                return
            self.commit(frames)
        if type(event) is Usage:
            self.usage = event
        frame = self._formatter.event(event)
        if frame:
            self.events += 1
            frames.append(frame)

    def commit(self, frames: list[bytes]) -> None:
        """Commit the stream (if it is not): the driver's ``on_commit``, then the
        ``metadata`` frame and the held events into ``frames``."""
        if self.committed:
            return
        metadata = self._driver.on_commit()
        self.committed = True
        self._write_frame = self._output.write_frame
        frames.append(self._formatter.start(metadata))
        self.events += 1
        held, self._held = self._held, None
        for event in held or ():
            self._frame(event, frames)

    def _flush(self, frames: list[bytes]) -> None:
        if frames:
            self._output.write(frames)

    # -- a stream's last frames ----------------------------------------------------

    def end_frames(self) -> list[bytes]:
        """A stream's last frames when the provider finished: the last read's, what is
        held, the end."""
        frames, self._last = self._last or [], None
        self.commit(frames)
        frames.append(self._formatter.end())
        self.events += 1
        return frames

    def failure_frames(self, error_type: str, message: str, retryable: bool,
                       status: int | None) -> list[bytes]:
        """A stream's last frames when it fails after its head: the last read's (if
        the provider had finished), what is held, the usage so far (a stream that ends
        early reports what it used), the error, the end."""
        frames, self._last = self._last or [], None
        self.commit(frames)
        usage = self._adapter.usage_so_far()
        if self.usage is None and usage is not None:
            self._frame(usage, frames)
        frames.append(self._formatter.event(ErrorEvent(
            type=error_type, message=message, retryable=retryable, status=status)))
        frames.append(self._formatter.end())
        self.events += 2
        return frames


class ReferencePump(Pump):
    """The general path alone, with no shortcut: what the fast paths must equal."""

    __slots__ = ()

    def on_body(self, data: bytes) -> None:
        adapter = self._adapter
        frames: list[bytes] = []
        try:
            self._general(data, frames)
        except Exception as exc:
            self._fault(exc, data, frames)
            return
        if adapter.finished:
            self._finished_with(frames)
        else:
            self._flush(frames)

    def _general(self, data: bytes, frames: list[bytes]) -> None:
        adapter = self._adapter
        for sse in self._reader.feed(data):
            self._frames(adapter.feed(sse.event, sse.data), frames)
            if adapter.finished:
                return
