"""``sseserver keys ...`` and ``sseserver token ...``: hashing API keys for
``[auth.keys]`` and minting browser tokens from the shell.

A key is read from stdin (a pipe, or a prompt that does not echo on a terminal),
never from the command line, so it stays out of shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from sseserver.config import load_config, read_config_file
from sseserver.core.auth import hash_key
from sseserver.errors import ConfigError
from sseserver.tokens import DEFAULT_TOKEN_TTL, mint_token

SECRET_BYTES = 32  # 256 bits: HMAC-SHA256's key size


def add_auth_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API key helpers",
                               description="Helpers for the API keys of [auth.keys].")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_commands.add_parser(
        "hash", help="print the SHA-256 of a key read from stdin",
        description="Print the hash to store in [auth.keys.NAME] for a key read from "
                    "stdin (first line) or typed at a prompt that does not echo; never "
                    "from the command line, so it stays out of shell history.")
    token = commands.add_parser("token", help="browser token helpers",
                                description="Mint signed browser tokens.")
    token_commands = token.add_subparsers(dest="token_command", required=True,
                                          metavar="ACTION")
    mint = token_commands.add_parser(
        "mint", help="print a signed token",
        description="Print a token signed with auth.token_secret (from --config, or "
                    "SSESERVER_AUTH_TOKEN_SECRET).")
    mint.add_argument("--config", metavar="FILE",
                      help="TOML configuration file (default: $SSESERVER_CONFIG)")
    mint.add_argument("--key", required=True, help="the configured key name it acts for")
    mint.add_argument("--ttl", type=float, default=DEFAULT_TOKEN_TTL,
                      help=f"seconds it stays valid (default {DEFAULT_TOKEN_TTL:g})")
    mint.add_argument("--stream", metavar="ID", help="subscribe to this stream only")
    mint.add_argument("--model", help="the only model it may start")
    mint.add_argument("--provider", help="the only provider it may use")
    mint.add_argument("--max-tokens", type=int, help="the max_tokens ceiling")
    token_commands.add_parser("secret", help="print a fresh random auth.token_secret")


def run_auth_command(args: argparse.Namespace, env: Mapping[str, str],
                     stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    try:
        if args.command == "keys":
            key = read_key(stdin or sys.stdin)
            print(hash_key(key), file=out)
        elif args.token_command == "secret":
            print(secrets.token_urlsafe(SECRET_BYTES), file=out)
        else:
            print(_mint(args, env), file=out)
    except (ConfigError, ValueError) as exc:
        print(f"sseserver: {exc}", file=sys.stderr)
        return 2
    return 0


def read_key(stdin: TextIO) -> str:
    """The key: typed at a prompt without echo, or the first line of piped input.
    Raises ValueError when it is empty."""
    if stdin.isatty():
        key = getpass.getpass("API key (not echoed): ")
    else:
        key = stdin.readline().rstrip("\r\n")
    if not key:
        raise ValueError("no key given on stdin")
    return key


def _mint(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    path = args.config or env.get("SSESERVER_CONFIG")
    config = load_config(read_config_file(path) if path else None, env)
    signing = config.auth.token_secret
    if not signing:
        raise ConfigError("auth.token_secret is not set (config file, or "
                          "SSESERVER_AUTH_TOKEN_SECRET)")
    return mint_token(signing[0], args.key, ttl=args.ttl, stream_id=args.stream,
                      model=args.model, provider=args.provider, max_tokens=args.max_tokens)
