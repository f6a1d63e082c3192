from django.core.management.base import BaseCommand, CommandError

from chat import verification
from chat.errors import ChatError
from chat.models import Profile


class Command(BaseCommand):
    help = "Set a user's verification status; their open connections apply it at once."

    def add_arguments(self, parser):
        parser.add_argument("user_id")
        parser.add_argument("status", choices=Profile.Status.values)

    def handle(self, *args, user_id, status, **options):
        try:
            verification.set_verification(user_ids=[user_id], status=status)
        except ChatError as error:
            raise CommandError(f"{error.code}: {error.message}") from error
        self.stdout.write(f"{user_id} is {status}")
