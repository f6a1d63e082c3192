import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from chat import dev_issuer, events, readiness
from chat.errors import Forbidden


def dev_jwks(request: HttpRequest) -> JsonResponse:
    """The dev issuer's public keys; absent unless JWT_DEV_ISSUER is on."""
    if not settings.JWT_DEV_ISSUER:
        raise Http404()
    return JsonResponse(dev_issuer.jwks_document())


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


async def ready(request: HttpRequest) -> JsonResponse:
    """200 when Redis and DynamoDB each answered within READY_TIMEOUT_SECONDS,
    else 503 naming the parts that did not (docs/openapi.json)."""
    checks = await readiness.check()
    failing = sorted(name for name, check in checks.items() if not check.ok)
    body = {
        "status": "unavailable" if failing else "ok",
        "failing": failing,
        "checks": {name: check.as_json() for name, check in checks.items()},
    }
    return JsonResponse(body, status=503 if failing else 200)


def _may_scrape(request: HttpRequest) -> bool:
    """A client in METRICS_ALLOWED_NETWORKS, or one that sends
    `Authorization: Bearer <METRICS_TOKEN>` (when that is set)."""
    try:
        client = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        if any(client in network for network in settings.METRICS_ALLOWED_NETWORKS):
            return True
    except ValueError:
        pass  # no address (a Unix socket): the token decides
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.METRICS_TOKEN
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


async def metrics(request: HttpRequest) -> HttpResponse:
    """This process's Prometheus metrics (chat.metrics); 403 to a client
    neither in METRICS_ALLOWED_NETWORKS nor bearing METRICS_TOKEN."""
    if not _may_scrape(request):
        error = Forbidden("Metrics are served to METRICS_ALLOWED_NETWORKS, or with METRICS_TOKEN")
        return JsonResponse(events.error_body(error), status=error.status)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
