from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat import services, validation
from chat.errors import ChatError


class Command(BaseCommand):
    help = "Create a chat room and print its id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--participants", required=True, help="comma-separated user ids")
        parser.add_argument("--name", help="room name")
        parser.add_argument("--activity", help="activity id to link the room to")

    def handle(self, *args: Any, participants: str, name: str | None, activity: str | None, **options: Any) -> None:
        ids = [user_id.strip() for user_id in participants.split(",") if user_id.strip()]
        try:
            fields = validation.create_room({"participantIds": ids, "name": name, "activityId": activity})
            room = services.create_room_sync(
                participant_ids=fields.participant_ids, name=fields.name, activity_id=fields.activity_id
            )
        except ChatError as error:
            raise CommandError(f"{error.code}: {error.message}") from error
        self.stdout.write(room.room_id)
