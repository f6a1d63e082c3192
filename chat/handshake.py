"""What a socket's opening handshake must show before it is authenticated:
an allowed Origin, and where its token is. The consumer applies this policy
and closes with the matching code."""

from typing import Any
from urllib.parse import parse_qs

from django.conf import settings

from chat import validation


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Browsers send Origin: it must be one of ALLOWED_ORIGINS ("*": any) or,
    when that is empty, the origin of the Host header. Origins compare by
    scheme, host and port, so look-alikes (`http://example.com.evil.net`,
    `http://example.com:8000@evil`, `null`) fail. daphne puts no scheme in
    a socket's scope (and TLS may end at a proxy): without one, the Host is
    read in the Origin's scheme. Clients without Origin pass."""
    headers = dict(scope.get("headers", []))
    raw = headers.get(b"origin", b"").decode("latin-1")
    if not raw or "*" in settings.ALLOWED_ORIGINS:
        return True
    origin = validation.origin(raw)
    if origin is None:
        return False
    if settings.ALLOWED_ORIGINS:
        return origin in {validation.origin(entry) for entry in settings.ALLOWED_ORIGINS}
    host = headers.get(b"host", b"").decode("latin-1")
    return origin == validation.origin(host, scheme=scope.get("scheme", origin.scheme))


def query_token(scope: dict[str, Any]) -> str | None:
    """The `token` query parameter of the socket's URL (browsers cannot set
    headers on a WebSocket)."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None
