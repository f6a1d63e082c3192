"""Staff's decisions on users' identity verification, the one action the
admin and the set_verification command share; each is kept as a Decision
row. Blocking (the ORM): async callers use chat.blocking.run_orm."""

import asyncio
import functools
import logging

from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from chat import delivery, events, storage
from chat.errors import InvalidRequest
from chat.models import Decision, Profile

log = logging.getLogger(__name__)


def set_verification(
    *, user_ids: list[str], status: str, decided_by: User | None = None, reason: str = ""
) -> list[Decision]:
    """Record a decision for each user (creating unseen users' profiles) in
    Django's database, as a history row, and in their PROFILE items, and,
    once it is committed (with the caller's transaction, if there is one),
    push it with its reason to their open connections, which apply it at
    once. decided_by None means a command. Returns the history rows.
    Raises InvalidRequest for an unknown status, or StorageUnavailable when
    an item cannot be written: nothing is decided then."""
    if status not in Profile.Status.values:
        raise InvalidRequest(f"status must be one of {', '.join(Profile.Status.values)}")
    now = timezone.now()
    decision = {"status": status, "decided_by": decided_by, "decided_at": now}
    rows = []
    with transaction.atomic():
        before = dict(Profile.objects.select_for_update().filter(user_id__in=user_ids).values_list("user_id", "status"))
        for user_id in user_ids:
            profile, _ = Profile.objects.update_or_create(
                user_id=user_id, defaults=decision, create_defaults={**decision, "nickname": user_id}
            )
            rows.append(
                Decision.objects.create(
                    profile=profile,
                    kind=Decision.Kind.VERIFICATION,
                    from_status=before.get(user_id, Profile.Status.PENDING),
                    to_status=status,
                    reason=reason,
                    decided_by=decided_by,
                    decided_at=now,
                )
            )
        # Inside the transaction: if storage fails, the decision is rolled
        # back here and the items already written get their old status back,
        # so staff see the error and nothing is half-decided.
        storage.run_sync(_record, {user_id: status for user_id in user_ids}, before)
        # Connections must never apply a decision that is rolled back.
        transaction.on_commit(functools.partial(_announce, list(user_ids), status, reason))
    return rows


def _announce(user_ids: list[str], status: str, reason: str) -> None:
    async_to_sync(delivery.to_users_quietly)(user_ids, events.verification_changed(status, reason))


async def _record(decisions: dict[str, str], before: dict[str, str]) -> None:
    """Write each user's decided status to their PROFILE item; if any write
    fails, put the old statuses back (pending for users never decided on)
    and raise StorageUnavailable."""
    outcomes = await asyncio.gather(
        *(storage.set_verification_status(user_id, status) for user_id, status in decisions.items()),
        return_exceptions=True,
    )
    failure = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
    if failure is None:
        return
    undo = [
        storage.set_verification_status(user_id, before.get(user_id, Profile.Status.PENDING))
        for (user_id, outcome) in zip(decisions, outcomes, strict=True)
        if not isinstance(outcome, BaseException)
    ]
    for undone in await asyncio.gather(*undo, return_exceptions=True):
        if isinstance(undone, BaseException):
            log.error("a PROFILE item keeps an undone decision: %r", undone)
    raise failure
