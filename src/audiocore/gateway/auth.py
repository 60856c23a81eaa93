"""Caller authentication for the gateways: ACS's signed JWT, a static bearer token, HTTP Basic.

Each authenticator checks the value of one ``Authorization`` header with :meth:`check`:
synchronous and free of I/O, so a server can call it inside its handshake callback, before
anything else exists for the connection. A refusal is an :class:`AuthError` whose ``reason``
is safe to log (it never holds the credential) and whose ``challenge`` is the
``WWW-Authenticate`` value to answer 401 with.

- :class:`AcsJwt`: Azure Communication Services signs each media-streaming WebSocket
  handshake with ``Authorization: Bearer <JWT>`` (RS256). The signature is verified with the
  keys of ACS's OpenID configuration (its ``jwks_uri``), and ``aud`` (your ACS resource id),
  ``iss``, ``exp`` and ``nbf`` are checked, by PyJWT. Keys are fetched before the server
  listens (:meth:`AcsJwt.start`) and refreshed in the background: periodically, and when a
  token names a key id not in the set (at most once per ``min_refresh_s``, so unknown ids
  cannot make the server fetch in a loop; that token itself is refused).
- :class:`StaticToken`: ``Authorization: Bearer <token>`` equal to a configured secret.
- :class:`BasicAuth`: HTTP Basic (RFC 7617) with one user name and password.

Comparisons of secrets are constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import ssl
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt

from audiocore._ext.errors import AudioCoreError
from audiocore.gateway._logsafe import redact_url

__all__ = [
    "ACS_ISSUER",
    "ACS_OPENID_CONFIGURATION",
    "AcsJwt",
    "AuthError",
    "Authenticator",
    "BasicAuth",
    "StaticToken",
]

log = logging.getLogger("audiocore.gateway.auth")

#: The issuer of ACS's OpenID configuration (the ``iss`` of its tokens), and where that
#: configuration is published (from ACS's "secure webhook endpoint" documentation).
ACS_ISSUER = "https://acscallautomation.communication.azure.com"
ACS_OPENID_CONFIGURATION = ACS_ISSUER + "/calling/.well-known/acsopenidconfiguration"

#: Longest ``Authorization`` value looked at (bytes); a JWT of ACS is about 1 KB.
MAX_CREDENTIALS = 8192
_BEARER = "Bearer"


class AuthError(AudioCoreError):
    """Credentials refused. ``reason``: why, safe to log; ``challenge``: the
    ``WWW-Authenticate`` value for the 401 answer."""

    def __init__(self, reason: str, challenge: str = _BEARER) -> None:
        super().__init__(reason)
        self.reason = reason
        self.challenge = challenge


class Authenticator(Protocol):
    """What the gateways need of an authenticator."""

    def check(self, authorization: str | None) -> Mapping[str, Any]:
        """Check one ``Authorization`` header value (None: absent); the token's claims
        (empty for tokens and passwords). Raises :class:`AuthError`. No I/O."""
        ...

    async def start(self) -> None:
        """Get ready (load keys) before the server listens; raises :class:`AuthError`."""
        ...

    async def aclose(self) -> None:
        """Stop background work."""
        ...


def _credentials(authorization: str | None, scheme: str, challenge: str) -> str:
    """The credentials after ``scheme`` in an Authorization value (scheme case-insensitive)."""
    if not authorization:
        raise AuthError("no credentials", challenge)
    if len(authorization) > MAX_CREDENTIALS:
        raise AuthError(f"credentials longer than {MAX_CREDENTIALS} bytes", challenge)
    given, _, rest = authorization.strip().partition(" ")
    if given.lower() != scheme.lower():
        raise AuthError(f"not {scheme} credentials", challenge)
    rest = rest.strip()
    if not rest:
        raise AuthError("empty credentials", challenge)
    return rest


class StaticToken:
    """``Authorization: Bearer <token>`` with a configured token (at least 16 characters)."""

    challenge = _BEARER

    def __init__(self, token: str) -> None:
        if len(token) < 16:
            raise ValueError("the caller token must have at least 16 characters")
        self._token = token.encode()

    def check(self, authorization: str | None) -> Mapping[str, Any]:
        given = _credentials(authorization, _BEARER, self.challenge)
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._token):
            raise AuthError("wrong token", self.challenge)
        return {}

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class BasicAuth:
    """HTTP Basic with one user name and password (UTF-8, RFC 7617)."""

    def __init__(self, username: str, password: str, realm: str = "audiocore") -> None:
        if not username or not password:
            raise ValueError("basic auth needs a user name and a password")
        if ":" in username:
            raise ValueError("a basic auth user name cannot contain ':'")
        self._user = username.encode()
        self._password = password.encode()
        self.challenge = f'Basic realm="{realm}", charset="UTF-8"'

    def check(self, authorization: str | None) -> Mapping[str, Any]:
        encoded = _credentials(authorization, "Basic", self.challenge)
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise AuthError("malformed basic credentials", self.challenge) from None
        user, sep, password = decoded.partition(b":")
        # both compared every time: the time taken says nothing about which one differed
        ok = hmac.compare_digest(user, self._user) & hmac.compare_digest(password, self._password)
        if not sep or not ok:
            raise AuthError("wrong user name or password", self.challenge)
        return {}

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


_JWT_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.MissingRequiredClaimError, "a required claim is missing"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
)


class AcsJwt:
    """ACS's signed handshake token (see the module docstring).

    ``jwks``: an ``https://`` URL of a JWKS or of an OpenID configuration (its ``jwks_uri``
    is followed; ``http://`` only to a loopback host), or the path of a JWKS file.
    ``audience``: your ACS resource id. ``issuer``: the expected ``iss`` (default ACS's; None
    takes the OpenID configuration's ``issuer``, and is an error without one).
    ``leeway_s``: clock skew allowed on ``exp``/``nbf``. Keys are refetched every
    ``refresh_s``, and on an unknown key id at most once per ``min_refresh_s``.
    """

    challenge = _BEARER

    def __init__(
        self,
        jwks: str,
        audience: str,
        issuer: str | None = ACS_ISSUER,
        *,
        leeway_s: float = 60.0,
        refresh_s: float = 3600.0,
        min_refresh_s: float = 60.0,
        fetch_timeout_s: float = 10.0,
        max_bytes: int = 1 << 20,
        algorithms: Sequence[str] = ("RS256",),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not audience:
            raise ValueError("an audience (the ACS resource id) is required")
        if any(a.lower() == "none" or a.upper().startswith("HS") for a in algorithms):
            raise ValueError("only public-key algorithms are allowed")
        self.source = jwks
        self.audience = audience
        self.issuer = issuer
        self.leeway_s = leeway_s
        self.refresh_s = refresh_s
        self.min_refresh_s = min_refresh_s
        self.fetch_timeout_s = fetch_timeout_s
        self.max_bytes = max_bytes
        self.algorithms = list(algorithms)
        self._ssl = ssl_context
        self._is_url = "://" in jwks
        if self._is_url:
            _check_url(jwks)
        self._keys: dict[str | None, Any] = {}
        self._last_fetch = -float("inf")
        self._refresher: asyncio.Task[None] | None = None
        self._pending: asyncio.Task[None] | None = None
        self.fetches = 0  #: key set fetches attempted (start, periodic and on unknown ids)

    @property
    def key_ids(self) -> list[str | None]:
        """The ids of the keys currently trusted."""
        return list(self._keys)

    async def start(self) -> None:
        try:
            await self._load()
        except AuthError:
            raise
        except Exception as exc:
            raise AuthError(f"cannot load the signing keys from {self._where()}: {exc}") from None
        if self._is_url and self.refresh_s > 0:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def aclose(self) -> None:
        for task in (self._refresher, self._pending):
            if task is not None:
                task.cancel()
        for task in (self._refresher, self._pending):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        self._refresher = self._pending = None

    def check(self, authorization: str | None) -> Mapping[str, Any]:
        token = _credentials(authorization, _BEARER, self.challenge)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise AuthError(f"algorithm {str(alg)[:16]!r} not allowed")
        kid = header.get("kid")
        if not isinstance(kid, (str, type(None))):
            raise AuthError("malformed key id")
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None:
            self._refresh_soon()
            raise AuthError("unknown key id")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=self.algorithms, audience=self.audience, issuer=self.issuer,
                leeway=self.leeway_s, options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError as exc:
            for kind, reason in _JWT_ERRORS:
                if isinstance(exc, kind):
                    raise AuthError(reason) from None
            raise AuthError("invalid token") from None
        return claims

    # ------------------------------------------------------------ keys

    def _where(self) -> str:
        return redact_url(self.source) if self._is_url else self.source

    async def _load(self) -> None:
        self._last_fetch = time.monotonic()
        self.fetches += 1
        if self._is_url:
            doc = await asyncio.to_thread(self._fetch, self.source)
            if "jwks_uri" in doc:  # an OpenID configuration
                if self.issuer is None:
                    issuer = doc.get("issuer")
                    if not isinstance(issuer, str) or not issuer:
                        raise AuthError("the OpenID configuration names no issuer")
                    self.issuer = issuer
                uri = doc["jwks_uri"]
                if not isinstance(uri, str):
                    raise AuthError("the OpenID configuration's jwks_uri is not a string")
                _check_url(uri)
                doc = await asyncio.to_thread(self._fetch, uri)
        else:
            data = Path(self.source).read_bytes()[: self.max_bytes + 1]
            doc = self._parse(data)
        if self.issuer is None:
            raise AuthError("no issuer configured")
        self._keys = self._keyset(doc)
        log.info("loaded %d signing key(s) from %s", len(self._keys), self._where())

    def _fetch(self, url: str) -> dict[str, Any]:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=self.fetch_timeout_s, context=self._ssl) as answer:
            data = answer.read(self.max_bytes + 1)
        return self._parse(data)

    def _parse(self, data: bytes) -> dict[str, Any]:
        if len(data) > self.max_bytes:
            raise AuthError(f"key document larger than {self.max_bytes} bytes")
        try:
            doc = json.loads(data)
        except ValueError:
            raise AuthError("key document is not JSON") from None
        if not isinstance(doc, dict):
            raise AuthError("key document is not a JSON object")
        return doc

    def _keyset(self, doc: dict[str, Any]) -> dict[str | None, Any]:
        keys = doc.get("keys")
        if not isinstance(keys, list):
            raise AuthError("key document has no 'keys' list")
        found: dict[str | None, Any] = {}
        for entry in keys:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
                continue
            try:
                found[entry.get("kid")] = jwt.PyJWK(entry, algorithm="RS256").key
            except jwt.PyJWTError:
                continue  # a malformed key among good ones is skipped
        if not found:
            raise AuthError("key document holds no usable RSA signing key")
        return found

    def _refresh_soon(self) -> None:
        """An unknown key id: refetch in the background, unless a fetch is running or one
        started less than ``min_refresh_s`` ago."""
        if not self._is_url or (self._pending is not None and not self._pending.done()):
            return
        if time.monotonic() - self._last_fetch < self.min_refresh_s:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._pending = loop.create_task(self._refresh("a token named an unknown key id"))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self._refresh("periodic refresh")

    async def _refresh(self, why: str) -> None:
        try:
            await self._load()
        except Exception as exc:  # keep the keys we have
            log.warning("refreshing the signing keys (%s) failed: %s; keeping %d key(s)",
                        why, exc, len(self._keys))


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost"):
        return
    raise ValueError(f"keys must come over https:// (http:// only from loopback), not {redact_url(url)!r}")
