from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse

from chat import dev_issuer


def dev_jwks(request: HttpRequest) -> JsonResponse:
    """The dev issuer's public keys; absent unless JWT_DEV_ISSUER is on."""
    if not settings.JWT_DEV_ISSUER:
        raise Http404()
    return JsonResponse(dev_issuer.jwks_document())


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
