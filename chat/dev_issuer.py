"""A token issuer for local runs and tests, enabled by JWT_DEV_ISSUER.

Its RSA key is created on first use under var/ and its JWKS is served over
HTTP by this app, so dev tokens are verified exactly like Cognito's: fetched
keys, signature, issuer, audience, expiry. Never enable it in production."""

import functools
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd, temp = tempfile.mkstemp(dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(temp, path)  # atomic, and loses to a concurrent creator
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    return _load(path)


@functools.cache
def _load(path: Path) -> rsa.RSAPrivateKey:
    """The key at path, parsed once per process (parsing costs tens of
    milliseconds; the benchmark signs thousands of tokens)."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ImproperlyConfigured(f"{path} does not hold an RSA private key")
    return key


def private_key() -> rsa.RSAPrivateKey:
    return _load_or_create_key(Path(settings.JWT_DEV_KEY_PATH))


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    kid = hashlib.sha256(f"{jwk['n']}.{jwk['e']}".encode()).hexdigest()[:16]
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def jwks_document() -> dict[str, Any]:
    return {"keys": [public_jwk(private_key())]}


def issue_token(*, sub: str, name: str | None = None, ttl: int = 3600, groups: list[str] | None = None) -> str:
    """A signed ID token shaped like Cognito's, for this server's issuer."""
    key = private_key()
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "token_use": "id",
        "iat": now,
        "exp": now + ttl,
    }
    if name:
        claims["nickname"] = name
    if groups:
        claims["cognito:groups"] = groups
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": public_jwk(key)["kid"]})
