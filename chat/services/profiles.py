"""What a connection needs of the user's profile, read from the PROFILE item
(one GetItem on the event loop). The ORM is touched only when a user is seen
for the first time or under a new nickname, so that staff find them in the
admin; decisions flow the other way (chat.services.verification writes the
item)."""

from chat import storage, verification
from chat.blocking import run_orm
from chat.domain import Identity, UserProfile
from chat.errors import UserSuspended
from chat.storage.dynamo import ConditionFailed

PENDING = "pending"


def _unless_suspended(profile: UserProfile | None) -> UserProfile | None:
    if profile is not None and profile.suspended:
        raise UserSuspended()
    return profile


async def ensure_not_suspended(user_id: str) -> None:
    """Raise UserSuspended if staff suspended the user (one GetItem, no ORM)."""
    _unless_suspended(await storage.get_profile(user_id))


async def current_status(user_id: str) -> str:
    """The user's verification status (pending if never seen). Raises
    UserSuspended if staff suspended the user."""
    profile = _unless_suspended(await storage.get_profile(user_id))
    return profile.verification_status if profile else PENDING


async def status_on_connect(identity: Identity) -> str:
    """The connecting user's verification status. Creates the Django profile
    (pending) on first sight and keeps its nickname current. Raises
    UserSuspended if staff suspended the user."""
    profile = _unless_suspended(await storage.get_profile(identity.user_id))
    if profile is not None and profile.nickname == identity.nickname:
        return profile.verification_status
    status = await run_orm(verification.ensure_profile, user_id=identity.user_id, nickname=identity.nickname)
    if profile is not None:
        # Only the nickname: a decision made meanwhile must not be undone.
        await storage.set_nickname(identity.user_id, identity.nickname)
        return profile.verification_status
    try:
        await storage.put_profile(UserProfile(identity.user_id, identity.nickname, status), only_new=True)
    except ConditionFailed:
        return await current_status(identity.user_id)  # a decision was recorded meanwhile
    return status
