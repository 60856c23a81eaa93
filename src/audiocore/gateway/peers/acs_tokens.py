"""A local stand-in for ACS's token signer: an RSA key, its JWKS, and handshake tokens
shaped like ACS's (RS256, ``kid`` in the header; ``iss``, ``aud``, ``iat``, ``nbf``, ``exp``).

The demo, the load test and the tests use it to run the bridge's real verification path
(:class:`audiocore.gateway.auth.AcsJwt`) offline: write :meth:`TokenIssuer.jwks` to a file
(or serve it), give the bridge that file and the audience, and send
``Authorization: Bearer <token()>`` from the caller.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from audiocore.gateway.auth import ACS_ISSUER

__all__ = ["TokenIssuer"]


class TokenIssuer:
    """Signs tokens with a fresh 2048-bit RSA key named ``kid`` (random by default)."""

    def __init__(self, kid: str | None = None, issuer: str = ACS_ISSUER) -> None:
        self.kid = kid or secrets.token_hex(8)
        self.issuer = issuer
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK (``kty`` RSA, ``use`` sig, ``alg`` RS256, ``kid``)."""
        key: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        key.update(use="sig", alg="RS256", kid=self.kid)
        return key

    def jwks(self) -> dict[str, Any]:
        """The key set document: ``{"keys": [jwk]}``."""
        return {"keys": [self.jwk()]}

    def write_jwks(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`jwks` to ``path`` (replaced atomically); the path."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.jwks()))
        tmp.replace(target)
        return target

    def token(self, audience: str, lifetime_s: float = 86400.0, **claims: Any) -> str:
        """A signed token for ``audience`` valid from now for ``lifetime_s`` (ACS's live a
        day); ``claims`` add to or override the standard ones."""
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.issuer, "aud": audience, "iat": now, "nbf": now,
                                "exp": now + int(lifetime_s)}
        body.update(claims)
        return jwt.encode(body, self.private_key, algorithm="RS256", headers={"kid": self.kid})

    def authorization(self, audience: str, **claims: Any) -> str:
        """The ``Authorization`` header value carrying :meth:`token`."""
        return "Bearer " + self.token(audience, **claims)
