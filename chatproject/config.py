"""Fail fast on a bad setting: the server and manage.py load the settings
before anything else, and a missing or wrong one (chatproject/settings.py
raises ImproperlyConfigured naming it) stops them with exit status 2 and
one line on stderr saying what to fix, not a traceback."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured

EXIT_CONFIGURATION = 2


def load_settings_or_exit() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 (reading a setting loads the module)
    except ImproperlyConfigured as error:
        print(f"configuration error: {error}", file=sys.stderr)
        sys.exit(EXIT_CONFIGURATION)
