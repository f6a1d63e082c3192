from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat import services
from chat.errors import ChatError
from chat.models import Profile


class Command(BaseCommand):
    help = "Set a user's verification status; their open connections apply it at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_id")
        parser.add_argument("status", choices=Profile.Status.values)

    def handle(self, *args: Any, user_id: str, status: str, **options: Any) -> None:
        try:
            services.set_verification(user_ids=[user_id], status=status)
        except ChatError as error:
            raise CommandError(f"{error.code}: {error.message}") from error
        self.stdout.write(f"{user_id} is {status}")
