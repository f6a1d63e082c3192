from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from chat import storage


class Command(BaseCommand):
    help = "Create the DynamoDB table (with GSI1 and TTL) if it does not exist."

    def handle(self, *args: Any, **options: Any) -> None:
        created = storage.create_table()
        state = "created" if created else "already exists"
        self.stdout.write(f"table {settings.DYNAMODB_TABLE} {state}")
