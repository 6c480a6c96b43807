"""Command line: flags and environment to configuration, uvloop, signals.

    sseserver serve [--config FILE] [--host H] [--port P] [--workers N] [--demo]
    sseserver fake-provider [--host H] [--port P]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from sseserver.config import Config, load_config, read_config_file
from sseserver.errors import ConfigError

logger = logging.getLogger("sseserver")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sseserver", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the SSE gateway")
    serve.add_argument("--config", help="TOML configuration file (or SSESERVER_CONFIG)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8080; 0 = any free)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port")
    serve.add_argument("--demo", action="store_true", default=None,
                       help="route every model to the built-in fake provider")
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
    fake = commands.add_parser("fake-provider",
                               help="run the fake OpenAI/Anthropic-compatible provider")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=9000)
    fake.add_argument("--log-level", default="info",
                      choices=["debug", "info", "warning", "error"])
    return parser


def config_from_args(args: argparse.Namespace, env: dict[str, str]) -> Config:
    """TOML file < SSESERVER_* environment < flags. Raises ConfigError."""
    path = args.config or env.get("SSESERVER_CONFIG")
    toml_text = read_config_file(path) if path else None
    overrides: dict[str, Any] = {}
    for flag in ("host", "port", "workers", "demo"):
        value = getattr(args, flag)
        if value is not None:
            overrides[f"server.{flag}"] = value
    return load_config(toml_text, env, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(message)s")
    # The format shows the message alone: skip gathering the caller, thread and process
    # of each record (a third of the cost of a stream's end-of-stream line).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    _install_uvloop()
    if args.command == "fake-provider":
        return _run_fake(args.host, args.port)
    try:
        config = config_from_args(args, dict(os.environ))
    except ConfigError as exc:
        print(f"sseserver: configuration error: {exc}", file=sys.stderr)
        return 2
    if config.server.workers > 1:
        from sseserver.workers import run_workers

        return run_workers(config, _serve)
    return _serve(config)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _serve(config: Config) -> int:
    from sseserver.server import Server

    async def run() -> None:
        server = Server(config)
        await server.start()
        _tune_gc()
        await _until_signalled()
        logger.info("draining (up to %g s)", config.streams.drain_timeout)
        await server.drain()

    return _run(run(), "cannot start")


def _tune_gc() -> None:
    """Set the cyclic collector for a process that holds thousands of streams.

    What exists once the server listens (modules, config, the loop) lives as long as
    the process: frozen, it is no longer walked by every full collection (a 20-30 ms
    pause with a thousand streams open). Each stream allocates a few hundred container
    objects, so the default first-generation threshold of 700 collected every few
    streams; 10,000 collects a tenth as often and still bounds cyclic garbage.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(10_000, older, oldest)


def _run_fake(host: str, port: int) -> int:
    from sseserver.fake import FakeProvider

    async def run() -> None:
        async with FakeProvider(host, port) as fake:
            logger.info("fake provider on %s", fake.base_url)
            await _until_signalled()

    return _run(run(), "cannot start the fake provider")


async def _until_signalled() -> None:
    """Return on SIGTERM or SIGINT."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()


def _run(main: Coroutine[Any, Any, None], failure: str) -> int:
    try:
        asyncio.run(main)
    except OSError as exc:
        print(f"sseserver: {failure}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
