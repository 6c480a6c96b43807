"""The command line's process-wide settings."""

from __future__ import annotations

import argparse
import asyncio
import gc
import pydoc
import signal
from importlib import metadata

import pytest

import sseserver
from sseserver import cli
from sseserver.stopping import FORCING_SIGNALS


def test_serving_freezes_startup_objects_and_collects_less_often() -> None:
    before = gc.get_threshold()
    try:
        cli._tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (10_000, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_help_is_for_users_and_every_command_documents_its_options(
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    for argv in ([], ["serve"], ["fake-provider"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args([*argv, "--help"])
        assert exited.value.code == 0
        text = capsys.readouterr().out
        assert "Command line:" not in text  # the module's docstring is for developers
        for action in _parser_for(parser, argv)._actions:
            assert action.help, f"{argv} {action.option_strings} has no help"
    serve_help = _help_of(parser, ["serve"])
    assert "debug, info, warning or error" in serve_help
    assert "OPENAI_API_KEY" in serve_help and "second Ctrl-C" in serve_help


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"sseserver {metadata.version('sseserver')}"
    assert metadata.version("sseserver") == sseserver.__version__


def test_dir_and_help_show_the_public_api() -> None:
    assert set(sseserver.__all__) <= set(dir(sseserver))
    text = pydoc.render_doc(sseserver, renderer=pydoc.plaintext)
    for name in ("Server(", "load_config(", "Config", "drain()"):
        assert name in text


def test_stop_signals_set_their_events_as_the_stage_moves() -> None:
    async def events_after(signals: list[int]) -> tuple[bool, bool]:
        stop = cli.StopSignals(FORCING_SIGNALS)
        for signum in signals:
            stop.on_signal(signum)
        return stop.requested.is_set(), stop.forced.is_set()

    assert asyncio.run(events_after([])) == (False, False)
    assert asyncio.run(events_after([signal.SIGTERM, signal.SIGTERM])) == (True, False)
    assert asyncio.run(events_after([signal.SIGTERM, signal.SIGINT])) == (True, True)


def _parser_for(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    if not argv:
        return parser
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[argv[0]]


def _help_of(parser: argparse.ArgumentParser, argv: list[str]) -> str:
    return _parser_for(parser, argv).format_help()


def test_the_log_level_is_taken_in_any_case() -> None:
    from sseserver.cli import build_parser

    assert build_parser().parse_args(["serve", "--log-level", "DEBUG"]).log_level == "debug"
