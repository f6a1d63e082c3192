"""Who is in a room, by name: the nicknames the browser client shows beside
messages (a message carries only its sender's id)."""

import asyncio
from dataclasses import dataclass

from chat import storage
from chat.domain import Identity
from chat.services.messages import readable_room


@dataclass(frozen=True)
class Participant:
    user_id: str
    nickname: str


async def room_participants(identity: Identity, room_id: str) -> list[Participant]:
    """The room's participants with their nicknames (their id when they have
    none yet), for those who may read the room; NotAParticipant otherwise."""
    room = await readable_room(identity, room_id)
    profiles = await asyncio.gather(*(storage.get_profile(user_id) for user_id in room.participant_ids))
    return [
        Participant(user_id, profile.nickname if profile and profile.nickname else user_id)
        for user_id, profile in zip(room.participant_ids, profiles, strict=True)
    ]
