"""Staff's moderation: suspending a user (or lifting it) and removing a
message, each kept as a Decision row beside the verification decisions.
The admin and commands call these; blocking (the ORM): async callers use
chat.blocking.run_orm.

As with verification, the Django transaction holds while storage is
written, so a storage failure leaves no row, and live events go out only
once the rows are committed."""

import asyncio
import functools
import logging

from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from chat import delivery, events, storage
from chat.domain import Message, iso_from_ms, now_ms
from chat.errors import InvalidRequest, MessageNotFound
from chat.models import Decision, Profile

log = logging.getLogger(__name__)


def set_suspension(
    *, user_ids: list[str], suspended: bool, decided_by: User | None = None, reason: str = ""
) -> list[Decision]:
    """Suspend the users (or lift their suspension): their PROFILE items
    carry the flag that connects and HTTP calls read, and, once committed,
    a suspension closes their open sockets (4430). Unseen users get a
    profile. decided_by None means a command. Returns the history rows.
    Raises StorageUnavailable (nothing changes then)."""
    now = timezone.now()
    kind = Decision.Kind.SUSPENSION if suspended else Decision.Kind.SUSPENSION_LIFTED
    rows = []
    with transaction.atomic():
        before = dict(
            Profile.objects.select_for_update().filter(user_id__in=user_ids).values_list("user_id", "suspended")
        )
        for user_id in user_ids:
            profile, _ = Profile.objects.update_or_create(
                user_id=user_id,
                defaults={"suspended": suspended},
                create_defaults={"suspended": suspended, "nickname": user_id},
            )
            rows.append(
                Decision.objects.create(
                    profile=profile, kind=kind, reason=reason, decided_by=decided_by, decided_at=now
                )
            )
        storage.run_sync(_record_suspensions, {user_id: suspended for user_id in user_ids}, before)
        if suspended:
            transaction.on_commit(functools.partial(_announce_suspension, list(user_ids)))
    return rows


def _announce_suspension(user_ids: list[str]) -> None:
    async_to_sync(delivery.to_users_quietly)(user_ids, events.user_suspended())


async def _record_suspensions(flags: dict[str, bool], before: dict[str, bool]) -> None:
    """Write each user's flag; if any write fails, put the others back and
    raise StorageUnavailable."""
    outcomes = await asyncio.gather(
        *(storage.set_suspended(user_id, flag) for user_id, flag in flags.items()), return_exceptions=True
    )
    failure = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
    if failure is None:
        return
    undo = [
        storage.set_suspended(user_id, before.get(user_id, False))
        for user_id, outcome in zip(flags, outcomes, strict=True)
        if not isinstance(outcome, BaseException)
    ]
    for undone in await asyncio.gather(*undo, return_exceptions=True):
        if isinstance(undone, BaseException):
            log.error("a PROFILE item keeps an undone suspension: %r", undone)
    raise failure


def remove_message(*, room_id: str, seq: int, decided_by: User | None = None, reason: str = "") -> Decision:
    """Remove the room's message with this seq: it stays in history as a
    tombstone (content emptied, deletedAt set, same key and seq), the
    room's previews stop showing it, and, once committed, the room's
    sockets get messageRemoved. The row is kept on the sender's profile
    (none for a system message). Raises MessageNotFound, InvalidRequest
    (removed already) or StorageUnavailable (nothing changes then)."""
    message = storage.run_sync(storage.message_at, room_id, seq)
    if message is None:
        raise MessageNotFound()
    if message.deleted_at is not None:
        raise InvalidRequest("The message is removed already")
    with transaction.atomic():
        profile = None
        if message.message_type == "user":
            profile, _ = Profile.objects.get_or_create(
                user_id=message.sender_id, defaults={"nickname": message.sender_id}
            )
        row = Decision.objects.create(
            profile=profile,
            kind=Decision.Kind.MESSAGE_REMOVED,
            reason=reason,
            decided_by=decided_by,
            decided_at=timezone.now(),
            room_id=room_id,
            message_id=message.message_id,
            seq=seq,
        )
        storage.run_sync(storage.remove_message, room_id, seq, deleted_at=iso_from_ms(now_ms()))
        transaction.on_commit(functools.partial(_announce_removal, message))
    return row


def _announce_removal(message: Message) -> None:
    async_to_sync(_deliver_removal)(message)


async def _deliver_removal(message: Message) -> None:
    """Best effort, like a message's own delivery: clients that missed it
    see the tombstone when they catch up."""
    try:
        await delivery.to_room(message.room_id, events.deliver(events.message_removed_frame(message)))
    except Exception:
        log.exception("removal of %s not announced in room %s", message.message_id, message.room_id)
