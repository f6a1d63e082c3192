"""ASGI entry point: HTTP goes to Django, WebSockets to the chat consumer."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 (after Django setup)
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from chat import auth  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Static files (the browser client's, the admin's) are served here
        # from the apps' static directories, in production too, so that the
        # server alone serves a working chat; a reverse proxy or CDN in front
        # may serve `collectstatic` output instead.
        "http": ASGIStaticFilesHandler(django_http),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
auth.start_warming()
# What is loaded by now (Django, the storage clients' modules) lives as long as
# the process: out of the collector's full passes, which walked all of it and
# paused a loaded server for 100-170 ms (docs/performance.md). The thresholds
# make those passes rare (settings.GC_THRESHOLDS).
gc.freeze()
gc.set_threshold(*settings.GC_THRESHOLDS)
