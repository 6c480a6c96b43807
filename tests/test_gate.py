"""The gate's per-key state and its settings, without sockets: scope escapes,
concurrency, the rate limit, single-use tokens, key reloads, the bind check."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from sseserver.auth_cli import read_key, run_auth_command
from sseserver.auth_settings import AuthSettings, exposure_error, is_loopback
from sseserver.cli import build_parser
from sseserver.config import load_config
from sseserver.core.auth import hash_key
from sseserver.errors import ConfigError
from sseserver.gate import Caller, Gate, Need, Refusal, credential_of, metrics_lines
from sseserver.tokens import mint_token

SECRET = "t" * 32
NOW = 1_800_000_000.0


def gate(keys: str = "", **auth: object) -> Gate:
    toml = (f'[auth]\ntoken_secret = "{SECRET}"\n'
            f'[auth.keys.app]\nhash = "{hash_key("app-key")}"\n{keys}'
            f'[auth.keys.other]\nhash = "{hash_key("other-key")}"\n')
    config = load_config(toml, overrides={f"auth.{k}": v for k, v in auth.items()})
    return Gate(config.auth)


def token(**fields: object) -> str:
    return mint_token(SECRET, "app", now=NOW, **fields)  # type: ignore[arg-type]


def status(result: Caller | Refusal | None) -> int:
    return result.status if isinstance(result, Refusal) else 200


def test_a_key_and_its_name() -> None:
    assert gate().check("app-key", Need.CREATE, "", NOW) == Caller("app")
    assert gate().check("other-key", Need.ANY, "", NOW) == Caller("other")


@pytest.mark.parametrize("credential", [None, "", "wrong", "app-key2", token()[:-1],
                                        mint_token("u" * 32, "app", now=NOW)])
def test_no_or_a_wrong_credential_is_401_with_www_authenticate(credential: str | None
                                                              ) -> None:
    refusal = gate().check(credential, Need.CREATE, "", NOW)
    assert isinstance(refusal, Refusal) and refusal.status == 401
    assert ("www-authenticate", 'Bearer realm="sseserver"') in refusal.headers
    assert "app" not in refusal.message and "other" not in refusal.message


def test_open_routes_and_no_auth_ask_nothing() -> None:
    assert gate().check(None, Need.NOTHING, "", NOW) is None
    assert Gate(AuthSettings()).check(None, Need.CREATE, "", NOW) is None


def test_a_token_for_an_unknown_key_is_401() -> None:
    assert status(gate().check(mint_token(SECRET, "gone", now=NOW), Need.CREATE, "", NOW)
                  ) == 401


def test_an_expired_token_is_401_at_the_boundary() -> None:
    minted = token(ttl=60)
    assert status(gate().check(minted, Need.CREATE, "", NOW + 59.9)) == 200
    assert status(gate().check(minted, Need.CREATE, "", NOW + 60)) == 401


OLD_SECRET, NEW_SECRET = "o" * 32, "n" * 32


def test_rotation_the_first_secret_signs_every_listed_one_verifies() -> None:
    rotated = load_config(f'[auth]\ntoken_secret = ["{NEW_SECRET}", "{OLD_SECRET}"]\n'
                          f'[auth.keys.app]\nhash = "{hash_key("app-key")}"\n').auth
    the_gate = Gate(rotated)
    before_rotation = mint_token(OLD_SECRET, "app", now=NOW)
    assert status(the_gate.check(before_rotation, Need.CREATE, "", NOW)) == 200
    assert status(the_gate.check(mint_token(NEW_SECRET, "app", now=NOW), Need.CREATE, "",
                                 NOW)) == 200
    out = io.StringIO()
    args = build_parser().parse_args(["token", "mint", "--key", "app", "--stream", "S"])
    env = {"SSESERVER_AUTH_TOKEN_SECRET": f"{NEW_SECRET},{OLD_SECRET}"}
    assert run_auth_command(args, env, None, out) == 0
    from sseserver.core.auth import decode_token

    minted = out.getvalue().strip()
    assert decode_token(NEW_SECRET.encode(), minted, time.time()).stream_id == "S"


def test_a_token_of_a_removed_secret_is_401() -> None:
    after = Gate(load_config(f'[auth]\ntoken_secret = "{NEW_SECRET}"\n'
                             f'[auth.keys.app]\nhash = "{hash_key("app-key")}"\n').auth)
    assert status(after.check(mint_token(OLD_SECRET, "app", now=NOW), Need.CREATE, "",
                              NOW)) == 401


def test_a_token_living_past_max_token_ttl_is_refused() -> None:
    assert status(gate(max_token_ttl=100.0).check(token(ttl=101), Need.CREATE, "", NOW)
                  ) == 401


def test_a_subscribe_token_cannot_create() -> None:
    refusal = gate().check(token(stream_id="A"), Need.CREATE, "", NOW)
    assert status(refusal) == 403


def test_a_token_for_stream_a_cannot_read_b() -> None:
    the_gate = gate()
    assert status(the_gate.check(token(stream_id="A"), Need.SUBSCRIBE, "A", NOW)) == 200
    assert status(the_gate.check(token(stream_id="A"), Need.SUBSCRIBE, "B", NOW)) == 403


def test_a_create_token_cannot_subscribe_or_read_metrics() -> None:
    assert status(gate().check(token(), Need.SUBSCRIBE, "A", NOW)) == 403
    assert status(gate().check(token(), Need.KEY, "", NOW)) == 403
    assert status(gate().check(token(stream_id="A"), Need.ANY, "", NOW)) == 200


def test_a_create_token_starts_one_generation() -> None:
    the_gate, minted = gate(), token()
    caller = the_gate.check(minted, Need.CREATE, "", NOW)
    assert isinstance(caller, Caller)
    the_gate.stream_started(caller, NOW)
    assert status(the_gate.check(minted, Need.CREATE, "", NOW + 1)) == 403
    assert status(the_gate.check(token(), Need.CREATE, "", NOW + 1)) == 200


def test_used_tokens_are_forgotten_once_expired() -> None:
    the_gate = gate()
    for at in range(5):
        caller = the_gate.check(token(ttl=10), Need.CREATE, "", NOW)
        assert isinstance(caller, Caller)
        the_gate.stream_started(caller, NOW + at)
    caller = the_gate.check(mint_token(SECRET, "app", now=NOW + 20), Need.CREATE, "",
                            NOW + 20)
    assert isinstance(caller, Caller)
    the_gate.stream_started(caller, NOW + 20)
    assert the_gate.ledger.spent_count == 1  # type: ignore[attr-defined]


def test_concurrency_limit_admits_exactly_the_limit() -> None:
    the_gate = gate("max_streams = 10\n")
    outcomes = []
    for _ in range(200):
        caller = the_gate.check("app-key", Need.CREATE, "", NOW)
        outcomes.append(status(caller))
        if isinstance(caller, Caller):
            the_gate.stream_started(caller, NOW)
    assert outcomes.count(200) == 10 and outcomes.count(429) == 190
    refusal = the_gate.check("app-key", Need.CREATE, "", NOW)
    assert isinstance(refusal, Refusal) and ("retry-after", "1") in refusal.headers
    assert status(the_gate.check("other-key", Need.CREATE, "", NOW)) == 200
    assert status(the_gate.check("app-key", Need.ANY, "", NOW)) == 200
    the_gate.stream_ended("app", 3, 4)
    assert status(the_gate.check("app-key", Need.CREATE, "", NOW)) == 200


def test_rate_limit_on_a_virtual_clock() -> None:
    the_gate = gate("requests_per_minute = 2\n")
    assert [status(the_gate.check("app-key", Need.ANY, "", NOW)) for _ in range(3)] == \
        [200, 200, 429]
    refusal = the_gate.check("app-key", Need.ANY, "", NOW + 10)
    assert isinstance(refusal, Refusal) and ("retry-after", "20") in refusal.headers
    assert status(the_gate.check("app-key", Need.ANY, "", NOW + 30)) == 200
    assert status(the_gate.check("other-key", Need.ANY, "", NOW)) == 200  # its own bucket


def test_generation_scope_refusals_are_403_and_counted() -> None:
    the_gate = gate('models = ["small"]\nmax_tokens = 100\n')
    caller = Caller("app")
    assert the_gate.check_generation(caller, "small", ["openai"], 100) is None
    refusal = the_gate.check_generation(caller, "big", ["openai"], 100)
    assert isinstance(refusal, Refusal) and refusal.status == 403
    assert status(the_gate.check_generation(caller, "small", ["openai"], None)) == 403
    assert the_gate.counters["app"].refusals == 2


def test_metrics_label_only_configured_key_names() -> None:
    the_gate = gate()
    the_gate.check("nope", Need.ANY, "", NOW)
    the_gate.stream_started(Caller("app"), NOW)
    the_gate.stream_ended("app", 7, 9)
    text = "\n".join(metrics_lines(the_gate))
    assert 'sseserver_key_output_tokens_total{key="app"} 9' in text
    assert 'sseserver_key_streams_total{key="app"} 1' in text
    assert "sseserver_auth_failures_total 1" in text
    assert "nope" not in text
    assert metrics_lines(Gate(AuthSettings())) == []


def test_keys_file_is_reloaded_and_a_bad_one_keeps_the_old_keys(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(f'[keys.one]\nhash = "{hash_key("first")}"\n')
    the_gate = Gate(load_config(f'[auth]\nkeys_file = "{keys_file}"\n').auth)
    assert the_gate.check("first", Need.ANY, "", NOW) == Caller("one")
    keys_file.write_text(f'[keys.one]\nhash = "{hash_key("first")}"\n'
                         f'[keys.two]\nhash = "{hash_key("second")}"\n')
    the_gate.reload()
    assert the_gate.check("second", Need.ANY, "", NOW) == Caller("two")
    keys_file.write_text("[keys.two]\nhash = 'not hex'\n")
    the_gate.reload()
    assert the_gate.check("first", Need.ANY, "", NOW) == Caller("one")


@pytest.mark.parametrize(("toml", "error"), [
    ('[auth.keys.a]\nhash = "abc"\n', "auth.keys.a.hash"),
    ('[auth.keys."a b"]\nhash = "' + "a" * 64 + '"\n', "key name"),
    ('[auth.keys.a]\nhash = "' + "a" * 64 + '"\nmax_streams = -1\n', "max_streams"),
    ('[auth.keys.a]\nhash = "' + "a" * 64 + '"\nsecret = 1\n', "auth.keys.a.secret"),
    ('[auth]\ntoken_secret = "short"\n', "auth.token_secret"),
    ('[auth]\ntoken_secret = ["' + "s" * 32 + '", "short"]\n', "auth.token_secret"),
    ('[auth]\nsubscribe = "maybe"\n', "auth.subscribe"),
    ('[auth]\nmetrics = "never"\n', "auth.metrics"),
])
def test_bad_auth_settings_name_the_setting(toml: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_config(toml)


def test_the_token_secret_is_never_shown() -> None:
    settings = load_config(f'[auth]\ntoken_secret = ["{SECRET}", "{OLD_SECRET}"]\n').auth
    assert SECRET not in repr(settings) and OLD_SECRET not in repr(settings)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.1", False),
    ("example.com", False)])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_public_bind_needs_auth_or_an_explicit_opt_out() -> None:
    message = exposure_error("0.0.0.0", AuthSettings(), False)
    assert message is not None
    assert "[auth]" in message and "--allow-unauthenticated" in message
    assert exposure_error("0.0.0.0", AuthSettings(), True) is None
    assert exposure_error("127.0.0.1", AuthSettings(), False) is None
    with_keys = load_config('[auth.keys.a]\nhash = "' + "a" * 64 + '"\n').auth
    assert exposure_error("0.0.0.0", with_keys, False) is None


@pytest.mark.parametrize(("headers", "query", "expected"), [
    ({"authorization": "Bearer k1"}, "", "k1"),
    ({"authorization": "bearer  k1 "}, "", "k1"),
    ({"x-api-key": "k2"}, "", "k2"),
    ({"authorization": "Basic abc"}, "", None),
    ({}, "token=sst1.a.b", "sst1.a.b"),
    ({}, "token=app-key", None),  # API keys never travel in a URL
    ({}, "lastEventId=3", None),
])
def test_credential_of(headers: dict[str, str], query: str, expected: str | None) -> None:
    assert credential_of(headers, query) == expected


def test_keys_hash_reads_the_key_from_stdin_not_argv() -> None:
    out = io.StringIO()
    args = build_parser().parse_args(["keys", "hash"])
    assert run_auth_command(args, {}, io.StringIO("app-key\n"), out) == 0
    assert out.getvalue().strip() == hash_key("app-key")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["keys", "hash", "app-key"])
    with pytest.raises(ValueError):
        read_key(io.StringIO(""))


def test_token_mint_uses_the_configured_secret() -> None:
    out = io.StringIO()
    args = build_parser().parse_args(["token", "mint", "--key", "app", "--stream", "S1"])
    assert run_auth_command(args, {"SSESERVER_AUTH_TOKEN_SECRET": SECRET}, None, out) == 0
    minted = out.getvalue().strip()
    assert status(gate().check(minted, Need.SUBSCRIBE, "S1", time.time())
                  ) == 200
    assert run_auth_command(args, {}, None, io.StringIO()) == 2


@pytest.mark.parametrize("module", ["gate", "auth_settings", "tokens", "core/auth", "key_ledger",
                                    "shared_ledger"])
def test_the_gate_reads_no_clock_and_runs_no_loop(module: str) -> None:
    from tests.test_layering import PACKAGE, imports_of

    imported = imports_of(PACKAGE / f"{module}.py")
    assert not imported & {"asyncio", "socket", "sseserver.aio"}
    if module != "tokens":  # the public minting helper defaults now to the clock
        assert "time" not in imported


def test_the_opt_out_from_flag_environment_or_file() -> None:
    from sseserver.cli import check_startable, config_from_args

    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--allow-unauthenticated"])
    check_startable(config_from_args(args, {}))
    env = {"SSESERVER_SERVER_ALLOW_UNAUTHENTICATED": "1"}
    check_startable(config_from_args(build_parser().parse_args(
        ["serve", "--host", "0.0.0.0"]), env))
    check_startable(load_config("[server]\nhost = '::'\nallow_unauthenticated = true\n"))
    with pytest.raises(ConfigError, match="--allow-unauthenticated"):
        check_startable(config_from_args(build_parser().parse_args(
            ["serve", "--host", "::", "--demo"]), {}))


def test_an_unreadable_keys_file_stops_the_start(tmp_path: Path) -> None:
    from sseserver.cli import check_startable

    config = load_config(env={"SSESERVER_AUTH_KEYS_FILE": str(tmp_path / "missing.toml")})
    with pytest.raises(ConfigError, match="cannot read keys file"):
        check_startable(config)
    with pytest.raises(ConfigError, match="cannot be set from the environment"):
        load_config(env={"SSESERVER_AUTH_KEYS": "a"})


def test_a_hold_given_back_frees_the_stream_and_leaves_the_token_unspent() -> None:
    the_gate, minted = gate("max_streams = 1\n"), token()
    caller = the_gate.check(minted, Need.CREATE, "", NOW)
    assert isinstance(caller, Caller) and caller.hold is not None
    assert status(the_gate.check("app-key", Need.CREATE, "", NOW)) == 429  # held
    the_gate.release_unstarted(caller)  # e.g. its body was refused
    the_gate.release_unstarted(caller)  # once only
    again = the_gate.check(minted, Need.CREATE, "", NOW)
    assert isinstance(again, Caller)
    the_gate.stream_started(again, NOW)
    the_gate.release_unstarted(again)  # started: kept
    assert status(the_gate.check(minted, Need.CREATE, "", NOW)) == 403
    assert the_gate.ledger.active("app") == 1


def test_a_look_takes_nothing() -> None:
    the_gate, minted = gate("max_streams = 1\nrequests_per_minute = 1\n"), token()
    for _ in range(3):
        assert status(the_gate.check(minted, Need.CREATE, "", NOW, take=False)) == 200
    assert status(the_gate.check(minted, Need.CREATE, "", NOW)) == 200


def shared_gate(monkeypatch: pytest.MonkeyPatch, keys: str = "") -> Gate:
    from sseserver import shared_ledger

    monkeypatch.setattr(shared_ledger, "_shared", shared_ledger.SharedLedger(2))
    return gate(keys)


def test_the_shared_ledger_decides_as_the_local_one(monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    the_gate = shared_gate(monkeypatch, "max_streams = 2\nrequests_per_minute = 3\n")
    callers = [the_gate.check("app-key", Need.CREATE, "", NOW) for _ in range(3)]
    assert [status(c) for c in callers] == [200, 200, 429]
    the_gate.release_unstarted(callers[0])  # type: ignore[arg-type]
    assert status(the_gate.check("app-key", Need.CREATE, "", NOW)) == 200
    assert status(the_gate.check("app-key", Need.ANY, "", NOW)) == 429  # the bucket
    assert status(the_gate.check("app-key", Need.ANY, "", NOW + 20)) == 200
    the_gate.release_unstarted(callers[1])  # type: ignore[arg-type]
    minted = token()
    spent = the_gate.check(minted, Need.CREATE, "", NOW + 40)
    assert isinstance(spent, Caller)
    the_gate.stream_started(spent, NOW + 40)
    assert status(the_gate.check(minted, Need.CREATE, "", NOW + 60)) == 403
    assert status(the_gate.check(minted, Need.CREATE, "", NOW + 301)) == 401  # expired


def test_a_dead_workers_column_is_released(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from sseserver import shared_ledger

    the_gate = shared_gate(monkeypatch, "max_streams = 1\n")
    assert status(the_gate.check("app-key", Need.CREATE, "", NOW)) == 200
    assert status(the_gate.check("app-key", Need.CREATE, "", NOW)) == 429
    shared_ledger.worker_exited(os.getpid())
    assert status(the_gate.check("app-key", Need.CREATE, "", NOW)) == 200


def test_a_full_token_bucket_refuses_rather_than_forgets(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from sseserver import shared_ledger

    monkeypatch.setattr(shared_ledger, "TOKEN_BUCKETS", 1)
    the_gate = shared_gate(monkeypatch)
    for _ in range(shared_ledger.TOKEN_BUCKET_SLOTS):
        assert status(the_gate.check(token(), Need.CREATE, "", NOW)) == 200
    refusal = the_gate.check(token(), Need.CREATE, "", NOW)
    assert isinstance(refusal, Refusal) and refusal.status == 503
    assert ("retry-after", "5") in refusal.headers
    later = mint_token(SECRET, "app", now=NOW + 400)  # the first ones have expired
    assert status(the_gate.check(later, Need.CREATE, "", NOW + 400)) == 200


def test_a_missing_max_tokens_takes_the_ceiling_a_stated_one_stays() -> None:
    from sseserver.gate import with_max_tokens
    from sseserver.schema import GenerationRequest, Message, NativeRequest

    plain = GenerationRequest("m", (Message("user", "hi"),))
    assert with_max_tokens(plain, 50).max_tokens == 50
    assert with_max_tokens(plain, None) is plain
    stated = GenerationRequest("m", (), max_tokens=9)
    assert with_max_tokens(stated, 50) is stated
    body = {"model": "m", "messages": []}
    native = GenerationRequest("m", (), native=NativeRequest("openai", body))
    capped = with_max_tokens(native, 50)
    assert capped.native is not None and capped.native.body["max_completion_tokens"] == 50
    assert "max_completion_tokens" not in body  # the request as received is not changed
    the_gate = gate('max_tokens = 100\n')
    assert the_gate.max_tokens_ceiling(Caller("app")) == 100
    assert the_gate.max_tokens_ceiling(the_gate.check(token(max_tokens=7), Need.ANY, "", NOW)
                                       ) == 7  # type: ignore[arg-type]
    assert the_gate.max_tokens_ceiling(Caller("other")) is None
    assert the_gate.max_tokens_ceiling(None) is None


def test_one_process_counts_in_memory_workers_in_the_shared_table(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sseserver import shared_ledger
    from sseserver.key_ledger import LocalLedger

    monkeypatch.setattr(shared_ledger, "_shared", None)
    keys = f'[auth.keys.app]\nhash = "{hash_key("app-key")}"\n'
    shared_ledger.prepare_for_workers(load_config(keys, overrides={"server.workers": 1}))
    shared_ledger.prepare_for_workers(load_config(overrides={"server.workers": 4}))  # no auth
    assert isinstance(gate().ledger, LocalLedger)
    shared_ledger.prepare_for_workers(load_config(keys, overrides={"server.workers": 4}))
    assert isinstance(gate().ledger, shared_ledger.SharedLedger)
    assert gate().ledger.columns == 4  # type: ignore[attr-defined]
