"""The gate's pure decisions: key identification, tokens, the bucket, scope checks."""

from __future__ import annotations

import ast
import hashlib
import hmac
import inspect
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.core import auth
from sseserver.core.auth import (
    Grant,
    KeyDigest,
    Scope,
    TokenBucket,
    TokenRefused,
    decode_token,
    encode_token,
    generation_refusal,
    hash_key,
    identify_key,
)

SECRET = b"s" * 32
NOW = 1_800_000_000.0
KEYS = [KeyDigest(name, bytes.fromhex(hash_key(key)))
        for name, key in (("old", "key-old-1"), ("new", "key-new-2"), ("ci", "key-ci-3"))]


def a_token(**fields: object) -> str:
    grant = Grant(**{"key": "web", "expires": int(NOW) + 60, "scope": Scope.CREATE,
                     "nonce": "n1", **fields})  # type: ignore[arg-type]
    return encode_token(SECRET, grant)


# -- API keys --------------------------------------------------------------------------


def test_hash_is_the_hex_sha256_of_the_key() -> None:
    assert hash_key("my-key") == hashlib.sha256(b"my-key").hexdigest()


def test_two_keys_are_valid_at_once_for_rotation() -> None:
    assert identify_key(KEYS, "key-old-1") == "old"
    assert identify_key(KEYS, "key-new-2") == "new"


@pytest.mark.parametrize("presented", ["", "key-old", "key-old-1 ", "KEY-OLD-1",
                                       hash_key("key-old-1"), "x" * 100_000])
def test_anything_else_is_no_key(presented: str) -> None:
    assert identify_key(KEYS, presented) is None


@pytest.mark.parametrize("presented", ["key-old-1", "key-ci-3", "wrong", ""])
def test_every_digest_is_compared_whichever_matches(
        presented: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(a)
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    identify_key(KEYS, presented)
    assert calls == [key.digest for key in KEYS]


def test_the_key_loop_has_no_early_exit() -> None:
    """Timing independence, structurally: no return or break inside the loop over the
    keys, so a match on the first key costs what a match on the last one does."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(identify_key)))
    loops = [node for node in ast.walk(tree) if isinstance(node, ast.For)]
    assert len(loops) == 1
    exits = [node for node in ast.walk(loops[0])
             if isinstance(node, ast.Return | ast.Break | ast.Raise)]
    assert exits == []
    compares = [node for node in ast.walk(loops[0]) if isinstance(node, ast.Call) and
                ast.unparse(node.func) == "hmac.compare_digest"]
    assert len(compares) == 1


# -- tokens ----------------------------------------------------------------------------


def test_a_token_round_trips() -> None:
    grant = Grant("web", int(NOW) + 60, Scope.CREATE, model="m", provider="p",
                  max_tokens=100, nonce="abc")
    assert decode_token(SECRET, encode_token(SECRET, grant), NOW) == grant
    subscribe = Grant("web", int(NOW) + 60, Scope.SUBSCRIBE, stream_id="s1")
    assert decode_token(SECRET, encode_token(SECRET, subscribe), NOW) == subscribe


def test_expiry_at_the_boundary() -> None:
    token = a_token(expires=int(NOW))
    assert decode_token(SECRET, token, NOW - 0.001).key == "web"
    with pytest.raises(TokenRefused, match="expired"):
        decode_token(SECRET, token, NOW)
    with pytest.raises(TokenRefused, match="expired"):
        decode_token(SECRET, token, NOW + 3600)


def test_another_secret_is_a_forgery() -> None:
    with pytest.raises(TokenRefused, match="signature"):
        decode_token(b"t" * 32, a_token(), NOW)


def test_every_byte_of_a_token_is_covered() -> None:
    token = a_token(model="gpt-4o-mini", max_tokens=10)
    for index in range(len(token)):
        for replacement in {"A", "a", "0", "_", "-", ".", "B", "="} - {token[index]}:
            tampered = token[:index] + replacement + token[index + 1:]
            with pytest.raises(TokenRefused):
                decode_token(SECRET, tampered, NOW)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_tampering_is_refused(data: st.DataObject) -> None:
    token = a_token(stream_id=None, max_tokens=5)
    index = data.draw(st.integers(0, len(token) - 1))
    kind = data.draw(st.sampled_from(["replace", "delete", "insert"]))
    char = data.draw(st.characters(codec="utf-8"))
    if kind == "replace":
        tampered = token[:index] + char + token[index + 1:]
    elif kind == "delete":
        tampered = token[:index] + token[index + 1:]
    else:
        tampered = token[:index] + char + token[index:]
    if tampered == token:
        return
    with pytest.raises(TokenRefused):
        decode_token(SECRET, tampered, NOW)


def test_a_forged_payload_with_a_valid_layout_is_refused() -> None:
    token = a_token()
    prefix, body, signature = token.split(".")
    other = a_token(key="admin").split(".")[1]
    with pytest.raises(TokenRefused):
        decode_token(SECRET, f"{prefix}.{other}.{signature}", NOW)
    assert body != other


@pytest.mark.parametrize("payload", [b"[]", b"{}", b'{"k":"w","e":"1","s":"create"}',
                                     b'{"k":"w","e":1,"s":"admin"}',
                                     b'{"k":"w","e":99999999999,"s":"subscribe"}',
                                     b'{"k":"w","e":99999999999,"s":"create","t":"9"}',
                                     b"not json"])
def test_a_signed_but_malformed_payload_is_refused(payload: bytes) -> None:
    body = auth._b64(payload)
    signed = f"sst1.{body}"
    with pytest.raises(TokenRefused, match="malformed"):
        decode_token(SECRET, f"{signed}.{auth._signature(SECRET, signed)}", NOW)


@pytest.mark.parametrize("junk", ["", "sst1", "sst1..", "sst2.a.b", "é" * 10,
                                  "sst1." + "a" * 5000 + ".b"])
def test_junk_is_refused(junk: str) -> None:
    with pytest.raises(TokenRefused):
        decode_token(SECRET, junk, NOW)


# -- the token bucket, on a virtual clock ------------------------------------------------


def test_the_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(6)  # one every 10 s
    assert [bucket.take(100.0) for _ in range(6)] == [0.0] * 6
    assert bucket.take(100.0) == pytest.approx(10.0)
    assert bucket.take(105.0) == pytest.approx(5.0)
    assert bucket.take(110.0) == 0.0
    assert bucket.take(110.0) == pytest.approx(10.0)


def test_the_bucket_never_holds_more_than_a_minute() -> None:
    bucket = TokenBucket(3)
    bucket.take(0.0)
    allowed = [bucket.take(10_000.0) for _ in range(4)]
    assert allowed[:3] == [0.0] * 3 and allowed[3] > 0


def test_a_clock_going_back_adds_nothing() -> None:
    bucket = TokenBucket(1)
    assert bucket.take(50.0) == 0.0
    assert bucket.take(10.0) > 0


# -- scope -----------------------------------------------------------------------------


def refusal(grant: Grant | None = None, models: tuple[str, ...] = (),
            providers: tuple[str, ...] = (), ceiling: int = 0, model: str = "m",
            routed: tuple[str, ...] = ("openai",), max_tokens: int | None = None
            ) -> str | None:
    return generation_refusal(grant, models, providers, ceiling, model, routed, max_tokens)


def test_generations_within_scope_pass() -> None:
    assert refusal() is None
    assert refusal(models=("m",), providers=("openai",), ceiling=10, max_tokens=10) is None
    token = Grant("web", 0, Scope.CREATE, model="m", provider="openai", max_tokens=5)
    assert refusal(token, max_tokens=5) is None


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"models": ("other",)}, "model 'm' is not allowed"),
    ({"providers": ("anthropic",)}, "provider"),
    ({"providers": ("openai",), "routed": ("openai", "anthropic")}, "provider"),
    ({"ceiling": 10}, "max_tokens must be set, at most 10"),
    ({"ceiling": 10, "max_tokens": 11}, "at most 10"),
    ({"grant": Grant("w", 0, Scope.CREATE, model="x")}, "model 'x' only"),
    ({"grant": Grant("w", 0, Scope.CREATE, provider="p")}, "provider 'p' only"),
    ({"grant": Grant("w", 0, Scope.CREATE, max_tokens=5), "ceiling": 10,
      "max_tokens": 6}, "at most 5"),
])
def test_generations_out_of_scope_are_refused(kwargs: dict[str, object], why: str) -> None:
    assert why in (refusal(**kwargs) or "")  # type: ignore[arg-type]


def test_every_secret_is_tried_whichever_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rotation: the new secret first, the old one after; a token of either passes,
    and each check costs one comparison per secret, whichever matched."""
    old, new = b"o" * 32, b"n" * 32
    calls: list[bytes] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(a)
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for signer in (old, new):
        calls.clear()
        assert decode_token((new, old), encode_token(signer, Grant(
            "web", int(NOW) + 60, Scope.CREATE)), NOW).key == "web"
        assert len(calls) == 2
    with pytest.raises(TokenRefused, match="signature"):
        decode_token((new,), encode_token(old, Grant("web", int(NOW) + 60, Scope.CREATE)),
                     NOW)
    loops = [node for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(
        auth._signed_by_any)))) if isinstance(node, ast.For)]
    assert len(loops) == 1 and not [node for node in ast.walk(loops[0]) if isinstance(
        node, ast.Return | ast.Break | ast.Raise)]


@pytest.mark.parametrize(("kwargs", "outcome"), [
    ({}, auth.Outcome.ADMITTED),
    ({"spent": True, "active": 9}, auth.Outcome.TOKEN_SPENT),
    ({"active": 2}, auth.Outcome.TOO_MANY_STREAMS),
    ({"active": 2, "stream": False}, auth.Outcome.ADMITTED),  # limits generations only
    ({"bucket": TokenBucket(1, tokens=0.0, updated=NOW)}, auth.Outcome.RATE_LIMITED),
    ({"active": 2, "bucket": TokenBucket(1, tokens=0.0, updated=NOW)},
     auth.Outcome.TOO_MANY_STREAMS),  # the bucket is not charged for it
])
def test_admission(kwargs: dict[str, Any], outcome: auth.Outcome) -> None:
    arguments: dict[str, Any] = {"spent": False, "stream": True, "active": 0,
                                 "max_streams": 2, "bucket": None, "now": NOW, **kwargs}
    assert auth.admission(**arguments)[0] is outcome
