"""Instructions per stream: each contender's server process under callgrind.

    python -m benchmarks.instructions --streams 200 --tokens 40 --contenders sseserver floor

CPU time on a shared machine moves by 10-20% from run to run; the number of
instructions a process executes does not (valgrind counts them, whatever else the
machine does). Each contender's server runs under ``valgrind --tool=callgrind`` with
the fake provider beside it; after a warm-up (one stream, then the counters are
zeroed) N streams of T tokens go through it, and the instructions they cost are
reported per stream and per event. Only user space is counted: the kernel's share
(sockets, about half of a server's CPU here) is the same for every contender, so these
ratios are wider than those of CPU time. Needs valgrind (Debian's ``valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load import (
    CONTENDERS,
    _accepts,
    _stop,
    clean_env,
    contender_argv,
    drive,
    start_fake_provider,
)

# Python starts slowly under valgrind: allow it this long to listen.
START_TIMEOUT = 300.0
_TOTAL = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def count(contender: str, streams: int, tokens: int, rate: float) -> int:
    """User-space instructions the server executed for ``streams`` streams."""
    with tempfile.TemporaryDirectory(prefix="sseserver-callgrind-") as workdir:
        fake, fake_port = start_fake_provider(clean_env())
        try:
            argv, env = contender_argv(contender, fake_port, 1)
            out = Path(workdir, "callgrind.out")
            log = Path(workdir, "server.log")
            with log.open("w") as sink:
                server = subprocess.Popen(
                    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", *argv],
                    env={**clean_env(), **env}, stdout=sink, stderr=sink)
            try:
                port = _wait_listening(log, server)
                asyncio.run(drive(port, 1, 1, 0.0))  # imports and first-use caches
                _control("-z", server.pid)
                results = asyncio.run(drive(port, streams, tokens, rate))
                _control("-d", server.pid)
            finally:
                server.terminate()
                server.wait(60)
            failed = sum(1 for r in results if r.error or not r.done or r.tokens != tokens)
            if failed:
                raise RuntimeError(f"{contender}: {failed} of {streams} streams failed")
            dump = Path(f"{out}.{server.pid}.1")  # the -d dump: the streams alone
            match = _TOTAL.search(dump.read_text(errors="replace"))
            if match is None:
                raise RuntimeError(f"no instruction total in {dump}")
            return int(match.group(1))
        finally:
            _stop(fake)


def _wait_listening(log: Path, server: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.poll() is None:
        match = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if match and _accepts(match.group(1)):
            return int(match.group(1).rsplit(":", 1)[1])
        time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the server did not start under valgrind: {log.read_text()[-500:]}")


def _control(option: str, pid: int) -> None:
    """Zero (-z) or dump (-d) the counters of a running callgrind."""
    subprocess.run(["callgrind_control", option, str(pid)], check=True,
                   capture_output=True, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--rate", type=float, default=20.0,
                        help="tokens/s per stream (0 = as fast as possible)")
    parser.add_argument("--contenders", nargs="+", default=["sseserver", "floor"],
                        choices=CONTENDERS)
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    events = args.streams * args.tokens
    totals = {name: count(name, args.streams, args.tokens, args.rate)
              for name in args.contenders}
    first = totals[args.contenders[0]]
    print(f"{'contender':>10}  {'instructions':>14}  {'per stream':>11}  {'per token':>10}  "
          f"{'vs ' + args.contenders[0]:>14}")
    for name, total in totals.items():
        print(f"{name:>10}  {total:>14,}  {total // args.streams:>11,}  "
              f"{total // events:>10,}  {total / first:>14.2f}")


if __name__ == "__main__":
    main()
