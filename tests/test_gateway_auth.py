"""Caller authentication (audiocore.gateway.auth), refusal counting and log redaction.

JWT cases follow the attacks a verifier must refuse (RFC 8725 section 2): tokens are built
with PyJWT or by hand (``alg: none``, HS256 keyed with the public key), the keys are RSA keys
made here and the JWKS is served over a real socket on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography.hazmat.primitives import serialization

from audiocore.gateway._logsafe import RedactingFilter, clip, redact_headers, redact_text, redact_url
from audiocore.gateway._refusals import Refusals
from audiocore.gateway.auth import ACS_ISSUER, AcsJwt, AuthError, BasicAuth, StaticToken
from audiocore.gateway.peers.acs_tokens import TokenIssuer
from gateway_util import KeyServer, b64url, hand_token, run

AUD = "6d0e1c2a-0000-4f6f-9d2e-acs-resource-id"


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ACS_ISSUER, "aud": AUD, "iat": now, "nbf": now, "exp": now + 300}
    base.update(over)
    return base


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    return TokenIssuer(kid="key-1")


@pytest.fixture
def keys(issuer: TokenIssuer) -> Iterator[KeyServer]:
    server = KeyServer()
    server.docs["/keys"] = issuer.jwks()
    server.docs["/.well-known/openid-configuration"] = {"issuer": ACS_ISSUER, "jwks_uri": server.url + "/keys"}
    yield server
    server.close()


def started(verifier: AcsJwt) -> AcsJwt:
    async def go() -> None:
        await verifier.start()
        await verifier.aclose()  # no background refresh in these synchronous checks

    run(go())
    return verifier


def reason(verifier: Any, authorization: str | None) -> str:
    with pytest.raises(AuthError) as info:
        verifier.check(authorization)
    assert info.value.challenge.startswith(("Bearer", "Basic"))
    return info.value.reason


def test_only_a_valid_acs_token_passes(issuer: TokenIssuer, keys: KeyServer) -> None:
    v = started(AcsJwt(keys.url + "/keys", AUD))
    assert v.key_ids == ["key-1"]
    good = issuer.token(AUD)
    assert v.check("Bearer " + good)["aud"] == AUD
    assert v.check("bearer  " + good)["iss"] == ACS_ISSUER  # the scheme is case-insensitive

    now = int(time.time())
    assert reason(v, "Bearer " + issuer.token(AUD, exp=now - 120, iat=now - 400, nbf=now - 400)) == "token expired"
    assert reason(v, "Bearer " + issuer.token("another-resource")) == "wrong audience"
    assert reason(v, "Bearer " + issuer.token(AUD, iss="https://evil.example")) == "wrong issuer"
    assert reason(v, "Bearer " + issuer.token(AUD, nbf=now + 600)) == "token not yet valid"
    assert reason(v, "Bearer " + TokenIssuer(kid="key-2").token(AUD)) == "unknown key id"
    # the same key id, another key: the signature does not verify
    assert reason(v, "Bearer " + TokenIssuer(kid="key-1").token(AUD)) == "bad signature"
    # a payload changed after signing
    head, _, sig = good.split(".")
    forged = head + "." + b64url(json.dumps(claims(aud=AUD, sub="admin")).encode()) + "." + sig
    assert reason(v, "Bearer " + forged) == "bad signature"


def test_alg_none_and_hs256_keyed_with_the_public_key_are_refused(issuer: TokenIssuer, keys: KeyServer) -> None:
    v = started(AcsJwt(keys.url + "/keys", AUD))
    none = hand_token({"alg": "none", "typ": "JWT", "kid": "key-1"}, claims())
    assert reason(v, "Bearer " + none) == "algorithm 'none' not allowed"
    pem = issuer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    confused = hand_token({"alg": "HS256", "typ": "JWT", "kid": "key-1"}, claims(),
                          pem)
    assert reason(v, "Bearer " + confused) == "algorithm 'HS256' not allowed"
    with pytest.raises(ValueError):
        AcsJwt(keys.url + "/keys", AUD, algorithms=("RS256", "HS256"))


def test_missing_and_malformed_credentials(keys: KeyServer) -> None:
    v = started(AcsJwt(keys.url + "/keys", AUD))
    assert reason(v, None) == "no credentials"
    assert reason(v, "") == "no credentials"
    assert reason(v, "Basic dXNlcjpwYXNz") == "not Bearer credentials"
    assert reason(v, "Bearer ") == "empty credentials"
    assert reason(v, "Bearer not.a.jwt") == "malformed token"
    assert reason(v, "Bearer " + "a" * 9000) == "credentials longer than 8192 bytes"


def test_openid_configuration_is_followed_and_supplies_the_issuer(issuer: TokenIssuer, keys: KeyServer) -> None:
    v = started(AcsJwt(keys.url + "/.well-known/openid-configuration", AUD, issuer=None))
    assert v.issuer == ACS_ISSUER
    assert v.check(issuer.authorization(AUD))["aud"] == AUD


def test_a_jwks_file_works_and_bad_sources_fail_at_start(issuer: TokenIssuer, tmp_path: Any) -> None:
    path = issuer.write_jwks(tmp_path / "jwks.json")
    v = started(AcsJwt(str(path), AUD))
    assert v.check(issuer.authorization(AUD))
    (tmp_path / "bad.json").write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
    with pytest.raises(AuthError, match="no usable RSA"):
        started(AcsJwt(str(tmp_path / "bad.json"), AUD))
    with pytest.raises(AuthError, match="cannot load"):
        started(AcsJwt(str(tmp_path / "missing.json"), AUD))
    with pytest.raises(ValueError, match="https"):
        AcsJwt("http://keys.example.com/jwks", AUD)
    with pytest.raises(ValueError):
        AcsJwt(str(path), "")


def test_an_unknown_key_id_refetches_once_per_interval(issuer: TokenIssuer, keys: KeyServer) -> None:
    rotated = TokenIssuer(kid="key-2")

    async def go() -> None:
        v = AcsJwt(keys.url + "/keys", AUD, min_refresh_s=0.0, refresh_s=0)
        await v.start()
        assert keys.hits == 1
        keys.docs["/keys"] = {"keys": [issuer.jwk(), rotated.jwk()]}  # ACS publishes a new key
        # that token is refused, and makes the verifier refetch in the background ...
        assert reason(v, rotated.authorization(AUD)) == "unknown key id"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while "key-2" not in v.key_ids:
            assert loop.time() < deadline, "the key set was not refetched"
            await asyncio.sleep(0.01)
        # ... after which the new key's tokens pass
        assert v.check(rotated.authorization(AUD))["aud"] == AUD
        # a flood of unknown ids within min_refresh_s makes at most one fetch
        v.min_refresh_s = 60.0
        hits = keys.hits
        for i in range(200):
            reason(v, _unknown_kid_token(rotated, f"k{i}"))
        await asyncio.sleep(0.2)
        assert keys.hits == hits
        await v.aclose()

    run(go())


def _unknown_kid_token(signer: TokenIssuer, kid: str) -> str:
    return "Bearer " + jwt.encode(claims(), signer.private_key, algorithm="RS256", headers={"kid": kid})


def test_a_failed_refresh_keeps_the_keys(issuer: TokenIssuer, keys: KeyServer) -> None:
    async def go() -> None:
        v = AcsJwt(keys.url + "/keys", AUD, refresh_s=0.05)
        await v.start()
        del keys.docs["/keys"]  # the key endpoint now answers 404
        hits = keys.hits
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while keys.hits < hits + 2:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        assert v.check(issuer.authorization(AUD))["aud"] == AUD
        await v.aclose()

    run(go())


def test_static_token() -> None:
    secret = "s3cret-token-of-32-characters-xx"
    t = StaticToken(secret)
    assert t.check(f"Bearer {secret}") == {}
    assert reason(t, f"Bearer {secret}x") == "wrong token"
    assert reason(t, f"Bearer {secret[:-1]}") == "wrong token"
    assert reason(t, None) == "no credentials"
    assert reason(t, f"Token {secret}") == "not Bearer credentials"
    with pytest.raises(ValueError):
        StaticToken("short")


def test_basic_auth_against_the_standard_library_encoding() -> None:
    b = BasicAuth("sora", "pässword:with:colons")
    # RFC 7617: base64 of UTF-8 "user:password", built here without audiocore
    good = "Basic " + base64.b64encode("sora:pässword:with:colons".encode()).decode()
    assert b.check(good) == {}
    for user, password in [("sora", "wrong"), ("Sora", "pässword:with:colons"), ("", "")]:
        header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        assert reason(b, header) == "wrong user name or password"
    assert reason(b, "Basic " + base64.b64encode(b"no-colon").decode()) == "wrong user name or password"
    assert reason(b, "Basic !!!") == "malformed basic credentials"
    assert reason(b, None) == "no credentials"
    with pytest.raises(AuthError) as info:
        b.check(None)
    assert info.value.challenge == 'Basic realm="audiocore", charset="UTF-8"'
    with pytest.raises(ValueError):
        BasicAuth("a:b", "c")


def test_refusals_are_counted_and_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    r = Refusals(logging.getLogger("audiocore.test.refusals"), interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "audiocore.test.refusals"):
        for _ in range(1000):
            r.refuse("too many calls", "x" * 5000)
        r.refuse("bad token")
        now[0] += 10.5
        r.refuse("too many calls")
    assert r.counts == {"too many calls": 1001, "bad token": 1}
    assert r.total == 1002
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("refused: too many calls (xxx") and len(lines[0]) < 300
    assert lines[2] == "refused: too many calls; 999 more since the last such line"


def test_redaction() -> None:
    assert redact_url("wss://host/v1/realtime?model=gpt&api-key=SECRET") == "wss://host/v1/realtime?model=***&api-key=***"
    assert redact_url("https://user:pw@host:8443/x") == "https://***@host:8443/x"
    assert redact_headers({"Authorization": "Bearer SECRET", "x-ms-call-connection-id": "c" * 500}) == {
        "Authorization": "***", "x-ms-call-connection-id": "c" * 64 + "...(500 chars)"}
    assert clip(b"a\x00\r\nb") == "a???b"
    assert clip(None) == "-"
    texts = [
        "GET /acs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET\r\napi-key: SECRET\r\n\r\n",
        "request headers: {'Authorization': 'Bearer SECRET', 'api-key': 'SECRET'}",
        "b'GET /v1/realtime?model=m&key=SECRET HTTP/1.1\\r\\nauthorization: Bearer SECRET\\r\\n'",
        "[(b'api-key', b'SECRET'), (b'cookie', b'SECRET')]",
    ]
    for text in texts:
        clean = redact_text(text)
        assert "SECRET" not in clean, clean
        assert "***" in clean
    record = logging.LogRecord("picows", logging.DEBUG, __file__, 1, "sent %s", (texts[0],), None)
    assert RedactingFilter().filter(record)
    assert "SECRET" not in record.getMessage()


@settings(max_examples=300)
@given(st.one_of(st.none(), st.text(max_size=300), st.builds(lambda s: "Bearer " + s, st.text(max_size=300)),
                 st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), st.binary(max_size=64)),
                 st.builds(lambda parts: "Bearer " + ".".join(parts),
                           st.lists(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=",
                                            max_size=80), min_size=1, max_size=4))))
def test_fuzz_any_authorization_value_is_a_clean_refusal(value: str | None) -> None:
    """Whatever a client sends, each checker answers AuthError (or, for the one valid
    value, claims) and never raises anything else."""
    for checker in FUZZ_CHECKERS:
        try:
            checker.check(value)
        except AuthError as exc:
            assert exc.reason and exc.challenge


def _fuzz_checkers() -> list[Any]:
    issuer = TokenIssuer(kid="fuzz")
    with tempfile.TemporaryDirectory() as tmp:
        v = started(AcsJwt(str(issuer.write_jwks(Path(tmp) / "jwks.json")), AUD))
    return [v, StaticToken("a-static-token-of-enough-length"), BasicAuth("user", "password")]


FUZZ_CHECKERS = _fuzz_checkers()
