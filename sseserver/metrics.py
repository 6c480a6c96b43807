"""``/metrics`` in Prometheus text format (exposition format 0.0.4): one process's
counters as text, and the texts of several worker processes as one server's.

Pure functions of numbers and text: the gateway passes its counters in, the worker
peers pass each other's texts, and nothing here reads a clock or a socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Gauges that say whether something holds for the server rather than how many: across
# workers the largest value is the server's (one worker draining: the server drains).
_COMBINED_BY_MAX = frozenset({"sseserver_draining"})


def render(counters: Mapping[str, int], *, active: int, draining: bool,
           extra: Iterable[str] = ()) -> str:
    """One process's metrics: the gateway's ``counters``, the streams in progress and
    whether it drains, then ``extra`` lines (per-key counters, worker handoffs)."""
    c = counters
    lines = [
        "# HELP sseserver_streams_active Streams in progress.",
        "# TYPE sseserver_streams_active gauge",
        f"sseserver_streams_active {active}",
        "# HELP sseserver_streams_total Streams ended, by status.",
        "# TYPE sseserver_streams_total counter",
        *(f'sseserver_streams_total{{status="{s}"}} {c["streams_" + s]}'
          for s in ("ok", "error", "cancelled")),
        "# HELP sseserver_streams_started_total Streams started.",
        "# TYPE sseserver_streams_started_total counter",
        f"sseserver_streams_started_total {c['streams_started']}",
        "# HELP sseserver_stream_events_total Events sent on ended streams.",
        "# TYPE sseserver_stream_events_total counter",
        f"sseserver_stream_events_total {c['stream_events']}",
        "# HELP sseserver_http_requests_total HTTP requests: routed, or refused before "
        "routing.",
        "# TYPE sseserver_http_requests_total counter",
        f"sseserver_http_requests_total {c['requests']}",
        "# HELP sseserver_http_refused_total Requests refused before routing "
        "(malformed, too large, too slow); counted in requests and errors too.",
        "# TYPE sseserver_http_refused_total counter",
        f"sseserver_http_refused_total {c['http_refused']}",
        "# HELP sseserver_http_errors_total Requests answered with an error status.",
        "# TYPE sseserver_http_errors_total counter",
        f"sseserver_http_errors_total {c['http_errors']}",
        "# HELP sseserver_draining 1 while the server drains.",
        "# TYPE sseserver_draining gauge",
        f"sseserver_draining {int(draining)}",
        *extra,
    ]
    return "\n".join(lines) + "\n"


def combine(texts: Iterable[str]) -> str:
    """Several processes' metrics as one: the samples of each series summed (the
    largest taken for the gauges in ``_COMBINED_BY_MAX``), each HELP and TYPE line
    once, in the order they first appear."""
    lines: dict[str, float | None] = {}  # a comment line, or a series and its value
    for text in texts:
        for line in text.splitlines():
            if not line or line.startswith("#"):
                lines.setdefault(line, None)
                continue
            series, _, value_text = line.rpartition(" ")
            value = _number(value_text)
            if value is None or not series:
                continue  # no sample of ours: never a reason to fail a scrape
            lines[series] = _merge(series, lines.get(series), value)
    return "".join(line + "\n" if value is None else f"{line} {_format(value)}\n"
                   for line, value in lines.items() if line)


def worker_lines(workers: int, missing: int) -> list[str]:
    """How complete a combined scrape is: the workers configured, and how many of them
    are not in it (down, or no answer in time)."""
    return [
        "# HELP sseserver_workers Worker processes the server runs.",
        "# TYPE sseserver_workers gauge",
        f"sseserver_workers {workers}",
        "# HELP sseserver_workers_missing Workers whose counters this scrape lacks "
        "(down or restarting, or no answer in time).",
        "# TYPE sseserver_workers_missing gauge",
        f"sseserver_workers_missing {missing}",
    ]


def _merge(series: str, before: float | None, value: float) -> float:
    if before is None:
        return value
    name = series.partition("{")[0]
    return max(before, value) if name in _COMBINED_BY_MAX else before + value


def _number(text: str) -> float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
