from typing import Any

from django.core.management.base import BaseCommand

from chat import services


class Command(BaseCommand):
    help = (
        "Delete expired connection items (both of each pair) and the connections of server processes"
        " that died, and close those sockets."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        reaped = services.reap_expired_connections_sync()
        self.stdout.write(f"reaped {reaped} connection(s)")
