from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat import dev_issuer


class Command(BaseCommand):
    help = "Print an ID token signed by the dev issuer (JWT_DEV_ISSUER must be on)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sub", required=True, help="user id (the token's subject)")
        parser.add_argument("--name", help="nickname claim")
        parser.add_argument("--ttl", type=int, default=3600, help="seconds until expiry (default 3600)")

    def handle(self, *args: Any, sub: str, name: str | None, ttl: int, **options: Any) -> None:
        if not settings.JWT_DEV_ISSUER:
            raise CommandError("the dev issuer is off: set JWT_DEV_ISSUER=1 (make run does)")
        self.stdout.write(dev_issuer.issue_token(sub=sub, name=name, ttl=ttl))
