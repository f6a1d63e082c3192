from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat import services
from chat.errors import ChatError
from chat.models import Profile


class Command(BaseCommand):
    help = (
        "Set a user's verification status, kept in the profile's history (decider: command);"
        " their open connections apply it at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_id")
        parser.add_argument("status", choices=Profile.Status.values)
        parser.add_argument("--reason", default="", help="why; the user's sockets receive it with the status")

    def handle(self, *args: Any, user_id: str, status: str, reason: str, **options: Any) -> None:
        try:
            services.set_verification(user_ids=[user_id], status=status, reason=reason.strip())
        except ChatError as error:
            raise CommandError(f"{error.code}: {error.message}") from error
        self.stdout.write(f"{user_id} is {status}")
