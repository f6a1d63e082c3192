"""Identity verification: profiles in Django's database, decisions by staff.

These functions use the ORM and are blocking; async callers use
chat.blocking.run_orm. Every decision is also written to the user's PROFILE
item, which is what the request path reads (chat.services.profiles)."""
import asyncio

from asgiref.sync import async_to_sync
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from chat import delivery, events, storage
from chat.errors import InvalidRequest
from chat.models import Profile

APPROVED = Profile.Status.APPROVED


def ensure_profile(*, user_id: str, nickname: str) -> str:
    """Create the user's profile (pending) on first sight, keep its nickname
    current, and return its verification status."""
    profile, created = Profile.objects.get_or_create(user_id=user_id, defaults={"nickname": nickname})
    if not created and nickname and profile.nickname != nickname:
        Profile.objects.filter(pk=profile.pk).update(nickname=nickname)
    return profile.status


def set_verification(*, user_ids: list[str], status: str, decided_by: AbstractBaseUser | None = None) -> int:
    """Record a decision for each user (creating unseen users' profiles) and
    push it to their open connections, which apply it at once. Returns the
    number of profiles decided."""
    if status not in Profile.Status.values:
        raise InvalidRequest(f"status must be one of {', '.join(Profile.Status.values)}")
    decision = {"status": status, "decided_by": decided_by, "decided_at": timezone.now()}
    with transaction.atomic():
        for user_id in user_ids:
            Profile.objects.update_or_create(
                user_id=user_id, defaults=decision, create_defaults={**decision, "nickname": user_id}
            )
        # Inside the transaction: if storage fails, the decision is undone
        # (StorageUnavailable reaches staff) rather than half-recorded.
        storage.run_sync(_record, list(user_ids), status)
    async_to_sync(delivery.to_users_quietly)(list(user_ids), events.verification_changed(status))
    return len(user_ids)


async def _record(user_ids: list[str], status: str) -> None:
    await asyncio.gather(*(storage.set_verification_status(user_id, status) for user_id in user_ids))
