"""The server as ``sseserver serve`` runs it, logging where its memory is, for a soak.

    python -m benchmarks.serve_stats --port 8080 --interval 15   (settings from SSESERVER_*)

Every interval, one line on stderr: RSS; CPython's small-object allocator (its arenas,
and the bytes of them in live blocks); glibc's heap (its size, in use, free inside it)
and its mmapped blocks; the objects the collector tracks; the streams the gateway
holds. RSS that grows while live bytes stay level is fragmentation, and these say
whose.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import re
import sys
import tempfile

import uvloop

from sseserver.config import load_config
from sseserver.server import Server

MiB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def glibc_heap() -> MallInfo2 | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):  # not glibc, or older than 2.33
        return None
    mallinfo2.restype = MallInfo2
    return mallinfo2()


def pymalloc() -> tuple[int, int]:
    """(bytes in arenas, bytes in live blocks), from ``sys._debugmallocstats``, which
    writes to the C stderr: read back from a file it is pointed at."""
    with tempfile.TemporaryFile("w+") as capture:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read()
    arenas = _number(text, r"# arenas allocated current\s*=\s*([\d,]+)")
    arena_size = _number(text, r"(\d[\d,]*) arenas \* (\d[\d,]*) bytes/arena", group=2)
    live = _number(text, r"# bytes in allocated blocks\s*=\s*([\d,]+)")
    return arenas * (arena_size or MiB), live


def _number(text: str, pattern: str, group: int = 1) -> int:
    match = re.search(pattern, text)
    return int(match.group(group).replace(",", "")) if match else 0


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def stats_line(server: Server) -> str:
    arenas, live = pymalloc()
    heap = glibc_heap()
    glibc = (f"glibc heap {heap.arena / MiB:.1f} in use {heap.uordblks / MiB:.1f} "
             f"free {heap.fordblks / MiB:.1f} mmap {heap.hblkhd / MiB:.1f}"
             if heap is not None else "glibc -")
    return (f"stats: rss {rss() / MiB:.1f} pymalloc arenas {arenas / MiB:.1f} "
            f"live {live / MiB:.1f} {glibc} MiB; objects {len(gc.get_objects())} "
            f"held {len(server.gateway.store)} active {len(server.gateway.relays)}")


async def serve(port: int, interval: float) -> None:
    config = load_config(None, dict(os.environ), {"server.port": port})
    async with Server(config) as server:
        while True:
            await asyncio.sleep(interval)
            logging.getLogger("sseserver.stats").info("%s", stats_line(server))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=15.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    uvloop.run(serve(args.port, args.interval))


if __name__ == "__main__":
    main()
