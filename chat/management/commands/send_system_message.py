from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat import services
from chat.errors import ChatError


class Command(BaseCommand):
    help = "Store a system message in a room and deliver it to the room's connections."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("room_id")
        parser.add_argument("text")

    def handle(self, *args: Any, room_id: str, text: str, **options: Any) -> None:
        try:
            message = services.send_system_message_sync(room_id=room_id, content=text)
        except ChatError as error:
            raise CommandError(f"{error.code}: {error.message}") from error
        self.stdout.write(f"{message.message_id} seq={message.seq}")
