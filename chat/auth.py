"""Verification of the JWT a client presents on connect.

Tokens are checked against the issuer's JWKS, fetched over HTTP on a pool
thread and cached. The cache is warmed when the server starts, refreshed when
a token names an unknown key (at most once per MIN_REFRESH_SECONDS, so random
key ids cannot make us hammer the issuer), and a handshake never waits for a
cold fetch longer than HANDSHAKE_WAIT_SECONDS, inside daphne's 5 s limit.
"""

import asyncio
import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass

import jwt
from django.conf import settings

from chat.blocking import run_blocking
from chat.domain import Identity
from chat.errors import AuthenticationFailed, AuthUnavailable, ChatError
from chat.validation import nickname as valid_nickname
from chat.validation import user_id as valid_user_id

log = logging.getLogger(__name__)

KEY_TYPE_ALGORITHMS = {
    "RSA": {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
    "EC": {"ES256", "ES384", "ES512"},
    "OKP": {"EdDSA"},
}
ALLOWED_ALGORITHMS = set().union(*KEY_TYPE_ALGORITHMS.values())
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
NICKNAME_CLAIMS = ("nickname", "name", "preferred_username", "cognito:username")
MIN_REFRESH_SECONDS = 30
HANDSHAKE_WAIT_SECONDS = 4.0


@dataclass(frozen=True)
class SigningKey:
    jwk: jwt.PyJWK
    declared_algorithm: str | None


class JwksCache:
    """Keys of one JWKS URL, by key id. Blocking; safe across threads."""

    def __init__(self, url: str, *, timeout: float, max_age: float):
        self.url, self.timeout, self.max_age = url, timeout, max_age
        self._keys: dict[str | None, SigningKey] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = threading.Lock()

    def key(self, kid: str | None) -> SigningKey | None:
        """The key for kid, refreshing the set if it is stale or lacks kid.
        Raises AuthUnavailable when no key set could ever be fetched."""
        age = time.monotonic() - self._fetched_at
        if kid not in self._keys or age > self.max_age:
            self.refresh()
        return self._keys.get(kid)

    def has_fresh(self, kid: str | None) -> bool:
        """Whether key(kid) would answer from the cache, without a fetch."""
        return kid in self._keys and time.monotonic() - self._fetched_at <= self.max_age

    def refresh(self, *, quiet: bool = False) -> None:
        """Fetch the key set (at most every MIN_REFRESH_SECONDS once one is
        held). A failure is logged, at DEBUG when quiet, and raises
        AuthUnavailable only while no key set is held."""
        with self._lock:
            if time.monotonic() - self._attempted_at < MIN_REFRESH_SECONDS and self._keys:
                return
            self._attempted_at = time.monotonic()
            try:
                self._keys = self._fetch()
                self._fetched_at = time.monotonic()
            except (OSError, ValueError) as exc:
                log.log(logging.DEBUG if quiet else logging.WARNING, "JWKS fetch from %s failed: %s", self.url, exc)
                if not self._keys:
                    raise AuthUnavailable() from exc

    def _fetch(self) -> dict[str | None, SigningKey]:
        with urllib.request.urlopen(self.url, timeout=self.timeout) as response:  # noqa: S310 (configured URL)
            document = json.loads(response.read())
        keys = {}
        for data in document.get("keys", []):
            try:
                keys[data.get("kid")] = SigningKey(jwt.PyJWK(data), data.get("alg"))
            except jwt.PyJWKError:
                continue  # a key type or curve this build cannot use
        if not keys:
            raise ValueError("the JWKS has no usable keys")
        if len(keys) == 1:
            keys[None] = next(iter(keys.values()))  # a token without kid may use the only key
        return keys

    def warm(self, *, attempts: int = 60, interval: float = 0.5) -> None:
        """Fetch until it works. The issuer may be this very server (the dev
        issuer), which does not listen yet: failures are quiet until the
        last attempt."""
        for attempt in range(1, attempts + 1):
            try:
                self._attempted_at = float("-inf")
                self.refresh(quiet=attempt < attempts)
                return
            except AuthUnavailable:
                time.sleep(interval)


_cache: JwksCache | None = None
_cache_lock = threading.Lock()


def jwks() -> JwksCache:
    global _cache
    with _cache_lock:
        if _cache is None or _cache.url != settings.JWT_JWKS_URL:
            _cache = JwksCache(
                settings.JWT_JWKS_URL,
                timeout=settings.JWT_JWKS_TIMEOUT_SECONDS,
                max_age=settings.JWT_JWKS_CACHE_SECONDS,
            )
        return _cache


def start_warming() -> None:
    """Warm the key cache in the background (called once at server start)."""
    if settings.JWT_JWKS_URL:
        threading.Thread(target=jwks().warm, name="jwks-warm", daemon=True).start()


def _signing_key(token: str) -> tuple[jwt.PyJWK, str]:
    """The verified-to-be-compatible key and algorithm for token. Only
    asymmetric algorithms are accepted, and only with a key of their type."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthenticationFailed("Malformed token") from exc
    algorithm = header.get("alg")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise AuthenticationFailed("Token algorithm not allowed")
    key = jwks().key(header.get("kid"))
    if key is None:
        raise AuthenticationFailed("Unknown signing key")
    declared = key.declared_algorithm
    if (declared and declared != algorithm) or algorithm not in KEY_TYPE_ALGORITHMS.get(key.jwk.key_type or "", ()):
        raise AuthenticationFailed("Token algorithm does not match its key")
    return key.jwk, algorithm


def verify_token(token: str) -> Identity:
    """Verify token (blocking: may fetch the JWKS). Raises
    AuthenticationFailed or AuthUnavailable."""
    if not settings.JWT_ISSUER or not settings.JWT_AUDIENCE or not settings.JWT_JWKS_URL:
        raise AuthUnavailable("No token issuer is configured")
    key, algorithm = _signing_key(token)
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            leeway=settings.JWT_LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.InvalidIssuerError as exc:
        # Says which side to fix: with `make run`, a token from another
        # server's dev issuer (another PORT) names that server.
        token_issuer, expected = _unverified_claim(token, "iss"), settings.JWT_ISSUER
        raise AuthenticationFailed(
            f"Invalid token: issuer {token_issuer} is not this server's JWT_ISSUER {expected!r}"
        ) from exc
    except jwt.InvalidAudienceError as exc:
        token_audience, expected = _unverified_claim(token, "aud"), settings.JWT_AUDIENCE
        raise AuthenticationFailed(
            f"Invalid token: audience {token_audience} is not this server's JWT_AUDIENCE {expected!r}"
        ) from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationFailed(f"Invalid token: {exc}") from exc
    if claims.get("token_use", "id") != "id":
        raise AuthenticationFailed("Only ID tokens are accepted")
    try:
        subject = valid_user_id(claims["sub"])
    except ChatError as exc:
        raise AuthenticationFailed("Invalid subject") from exc
    claimed = (valid_nickname(claims[c]) for c in NICKNAME_CLAIMS if claims.get(c))
    nickname = next((name for name in claimed if name), None) or valid_nickname(subject) or "user"
    groups = claims.get("cognito:groups") or ()
    return Identity(user_id=subject, nickname=nickname, groups=tuple(map(str, groups)), expires_at=float(claims["exp"]))


def _unverified_claim(token: str, name: str) -> str:
    """A claim of a token whose signature checked out, shown for a log line
    (quoted and cut short: it is the client's text)."""
    value = jwt.decode(token, options={"verify_signature": False}).get(name)
    return repr(value)[:120]


def _key_id(token: str) -> str | None:
    """The token's key id. Raises AuthenticationFailed for a malformed
    header or a key id that is not a string."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise AuthenticationFailed("Malformed token") from exc
    if kid is not None and not isinstance(kid, str):
        raise AuthenticationFailed("Malformed token")
    return kid


async def authenticate(token: str | None) -> Identity:
    """Verify token without blocking the event loop: on the loop itself when
    its key is cached (a signature check, no I/O), else on the blocking pool,
    waiting at most HANDSHAKE_WAIT_SECONDS for the issuer's keys."""
    if not token:
        raise AuthenticationFailed("Missing token")
    if jwks().has_fresh(_key_id(token)):
        return verify_token(token)
    try:
        return await asyncio.wait_for(run_blocking(verify_token, token), HANDSHAKE_WAIT_SECONDS)
    except TimeoutError as exc:
        raise AuthUnavailable() from exc
