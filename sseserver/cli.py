"""Command line: flags and environment to configuration, uvloop, signals.

    sseserver serve [--config FILE] [--host H] [--port P] [--workers N] [--demo]
                    [--log-level L]
                    [--allow-unauthenticated]
    sseserver fake-provider [--host H] [--port P] [--log-level L]
    sseserver keys hash                 (the key from stdin, or a prompt)
    sseserver token mint --key NAME [--ttl S] [--stream ID | --model M ...]
    sseserver token secret
    sseserver --version

The user's help is ``DESCRIPTION`` and the parsers' texts; this docstring is not shown.
SIGTERM or SIGINT drains; a SIGINT during the drain stops at once (:class:`StopSignals`).
SIGHUP reads the API keys again (``auth.keys_file``).
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
from importlib import metadata
from typing import TYPE_CHECKING, Any

from sseserver.auth_cli import add_auth_commands, run_auth_command
from sseserver.auth_settings import all_keys, exposure_error
from sseserver.config import Config, load_config, read_config_file
from sseserver.errors import ConfigError
from sseserver.stopping import (
    FORCING_SIGNALS,
    WORKER_FORCING_SIGNALS,
    StopStage,
    next_stage,
)
from sseserver.stream_end import LineHandler, MessageFormatter, log_streams_directly

if TYPE_CHECKING:
    from sseserver.aio.worker_channel import WorkerPlace
    from sseserver.server import Server

logger = logging.getLogger("sseserver")


DESCRIPTION = """\
A Server-Sent Events gateway for AI provider streams: clients POST a chat request and
get one standard SSE stream, relayed from OpenAI- or Anthropic-style providers.
"""
SERVE_EPILOG = """\
providers: OPENAI_API_KEY, ANTHROPIC_API_KEY (with OPENAI_BASE_URL /
ANTHROPIC_BASE_URL), GEMINI_API_KEY or GOOGLE_API_KEY, AWS_ACCESS_KEY_ID +
AWS_SECRET_ACCESS_KEY + AWS_REGION (Bedrock), or [providers.NAME] tables in the config
file; --demo needs none.
Settings: TOML file < SSESERVER_<SECTION>_<KEY> variables < these flags.
Ctrl-C or SIGTERM drains (running streams get up to streams.drain_timeout seconds);
a second Ctrl-C stops at once.
"""
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_HELP = "log verbosity on stderr: debug, info, warning or error (default: info)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sseserver", description=DESCRIPTION,
                                     epilog="sseserver COMMAND --help shows a command's "
                                            "options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     title="commands", help="what to run")
    serve = commands.add_parser(
        "serve", help="run the SSE gateway", description="Run the SSE gateway.",
        epilog=SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--config", metavar="FILE",
                       help="TOML configuration file (default: $SSESERVER_CONFIG)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8080; 0 = any free)")
    serve.add_argument("--workers", type=int, metavar="N",
                       help="worker processes sharing the port (default 1)")
    serve.add_argument("--demo", action="store_true", default=None,
                       help="route every model to the built-in fake provider (no key needed)")
    serve.add_argument("--log-level", default="info", choices=LOG_LEVELS, type=str.lower,
                       metavar="LEVEL", help=LOG_LEVEL_HELP)
    serve.add_argument("--allow-unauthenticated", action="store_true", default=None,
                       help="listen beyond loopback with no [auth] keys, on purpose")
    fake = commands.add_parser(
        "fake-provider", help="run the fake OpenAI/Anthropic-compatible provider",
        description="Run the scripted fake provider that tests and the demo use: "
                    "POST /v1/chat/completions (OpenAI) and /v1/messages (Anthropic).")
    fake.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    fake.add_argument("--port", type=int, default=9000,
                      help="port to bind (default 9000; 0 = any free)")
    fake.add_argument("--log-level", default="info", choices=LOG_LEVELS, type=str.lower,
                      metavar="LEVEL", help=LOG_LEVEL_HELP)
    add_auth_commands(commands)
    return parser


def _version() -> str:
    try:
        return metadata.version("sseserver")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        from sseserver import __version__

        return __version__


def config_from_args(args: argparse.Namespace, env: dict[str, str]) -> Config:
    """TOML file < SSESERVER_* environment < flags. Raises ConfigError."""
    path = args.config or env.get("SSESERVER_CONFIG")
    toml_text = read_config_file(path) if path else None
    overrides: dict[str, Any] = {}
    for flag in ("host", "port", "workers", "demo", "allow_unauthenticated"):
        value = getattr(args, flag)
        if value is not None:
            overrides[f"server.{flag}"] = value
    return load_config(toml_text, env, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("keys", "token"):  # print one value, start nothing
        return run_auth_command(args, dict(os.environ))
    handler = LineHandler(sys.stderr)
    handler.setFormatter(MessageFormatter())  # the message alone, as "%(message)s"
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    log_streams_directly(handler)  # the same lines, without two hops of propagation
    # The format shows the message alone: skip gathering the caller, thread and process
    # of each record (a third of the cost of a stream's end-of-stream line).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    _install_uvloop()
    if args.command == "fake-provider":
        return _run_fake(args.host, args.port)
    try:
        config = config_from_args(args, dict(os.environ))
        check_startable(config)
    except ConfigError as exc:
        print(f"sseserver: configuration error: {exc}", file=sys.stderr)
        return 2
    if config.server.workers > 1:
        from sseserver.workers import run_workers

        return run_workers(config, lambda config, place: _serve(config, worker=place))
    return _serve(config)


def check_startable(config: Config) -> None:
    """Refuse a start that would serve everyone unauthenticated, or with unreadable
    keys. Raises :class:`ConfigError`."""
    refused = exposure_error(config.server.host, config.auth,
                             config.server.allow_unauthenticated)
    if refused is not None:
        raise ConfigError(refused)
    all_keys(config.auth)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _serve(config: Config, *, worker: WorkerPlace | None = None) -> int:
    """Serve until signalled: the whole server, or one worker of ``--workers N``."""
    from sseserver.server import Server

    async def run() -> None:
        server = Server(config, worker=worker)
        await server.start()
        _tune_gc()
        stop = StopSignals.install(worker is not None)
        if server.gateway is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP,
                                                          server.gateway.gate.reload)
        await _stop_requested(stop, server)
        logger.info("draining: running streams get up to %g s; a second Ctrl-C stops "
                    "at once", config.streams.drain_timeout)
        await _drain_unless_forced(server, stop)

    return _run(run(), "cannot start")


async def _stop_requested(stop: StopSignals, server: Server) -> None:
    """Until a stop signal comes or, for a worker, its parent process is gone."""
    waits = {asyncio.ensure_future(stop.requested.wait())}
    if server.peers is not None:
        waits.add(asyncio.ensure_future(server.peers.parent_gone.wait()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()


async def _drain_unless_forced(server: Server, stop: StopSignals) -> None:
    draining = asyncio.ensure_future(server.drain())
    forced = asyncio.ensure_future(stop.forced.wait())
    await asyncio.wait({draining, forced}, return_when=asyncio.FIRST_COMPLETED)
    forced.cancel()
    if draining.done():
        draining.result()
        return
    draining.cancel()
    logger.warning("stopping at once: running streams end now")
    await server.drain(timeout=0)


class StopSignals:
    """The stop stage of this process, driven by its signals (see ``stopping``)."""

    def __init__(self, forcing: frozenset[int]) -> None:
        self.stage = StopStage.RUNNING
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self.forcing = forcing

    @classmethod
    def install(cls, worker: bool) -> StopSignals:
        loop = asyncio.get_running_loop()
        if worker:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            stop, listened = cls(WORKER_FORCING_SIGNALS), (signal.SIGTERM,)
        else:
            stop, listened = cls(FORCING_SIGNALS), (signal.SIGTERM, signal.SIGINT)
        for signum in listened:
            loop.add_signal_handler(signum, stop.on_signal, signum)
        return stop

    def on_signal(self, signum: int) -> None:
        self.stage = next_stage(self.stage, signum, self.forcing)
        if self.stage is not StopStage.RUNNING:
            self.requested.set()
        if self.stage is StopStage.FORCED:
            self.forced.set()


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
    except ConfigError as exc:  # the keys file went away since the start was checked
        print(f"sseserver: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
