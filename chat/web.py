"""The browser client's pages: the chat page itself (its scripts and styles
are static files under chat/static/chat/), the configuration it reads at
start, and, with the dev issuer only, the local sign-in that signs a token
for a typed user id and nickname."""

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from chat import dev_issuer, events, validation
from chat.api import MethodNotAllowed, json_body
from chat.blocking import run_blocking
from chat.errors import ChatError, InvalidRequest, NotFound

PAGE = (Path(__file__).resolve().parent / "static" / "chat" / "index.html").read_bytes()
DEV_TOKEN_SECONDS = 3600


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in {"http", "https"} and parts.netloc else None


def content_security_policy() -> str:
    """Scripts and styles from this origin only (the page has no inline
    script or style); the socket and the API on this origin, plus the
    issuer's token endpoint for the OIDC sign-in."""
    connect = ["'self'"]
    if settings.OIDC_TOKEN_URL and (token_origin := _origin(settings.OIDC_TOKEN_URL)):
        connect.append(token_origin)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


@require_safe
async def index(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(PAGE, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = content_security_policy()
    response["Referrer-Policy"] = "no-referrer"  # the OIDC code comes back in the URL
    response["Cache-Control"] = "no-cache"
    return response


@require_safe
async def client_config(request: HttpRequest) -> JsonResponse:
    """How the page signs in: the dev issuer's form, or the OIDC issuer's
    hosted sign-in (authorization code with PKCE), or both."""
    oidc = None
    if settings.OIDC_AUTHORIZE_URL and settings.OIDC_TOKEN_URL and settings.OIDC_CLIENT_ID:
        oidc = {
            "authorizeUrl": settings.OIDC_AUTHORIZE_URL,
            "tokenUrl": settings.OIDC_TOKEN_URL,
            "clientId": settings.OIDC_CLIENT_ID,
            "scope": settings.OIDC_SCOPES,
            "redirectUri": settings.OIDC_REDIRECT_URI or None,
        }
    return JsonResponse({"devSignIn": settings.JWT_DEV_ISSUER, "oidc": oidc})


def _dev_identity(fields: dict[str, Any]) -> tuple[str, str]:
    user_id = validation.user_id(fields.get("userId"))
    raw_nickname = fields.get("nickname")
    if raw_nickname is not None and not isinstance(raw_nickname, str):
        raise InvalidRequest("nickname must be a string")
    nickname = validation.nickname(raw_nickname or "") or user_id[: validation.MAX_NICKNAME]
    return user_id, nickname


@csrf_exempt
async def dev_token(request: HttpRequest) -> JsonResponse:
    """POST {userId, nickname?} -> {idToken, expiresIn}: a dev-issuer ID
    token for whoever is typed in. Local runs only: 404 unless
    JWT_DEV_ISSUER is on."""
    try:
        if not settings.JWT_DEV_ISSUER:
            raise NotFound()
        if request.method != "POST":
            raise MethodNotAllowed()
        user_id, nickname = _dev_identity(json_body(request))
        # The first call may create the RSA key (a file, a key generation).
        token = await run_blocking(dev_issuer.issue_token, sub=user_id, name=nickname, ttl=DEV_TOKEN_SECONDS)
    except ChatError as error:
        return JsonResponse(events.error_body(error), status=error.status)
    return JsonResponse({"idToken": token, "expiresIn": DEV_TOKEN_SECONDS})
