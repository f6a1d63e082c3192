"""The PROFILE item: what the request path needs of a user's Django profile
(its verification status and nickname), readable with one GetItem. Staff
decide in the Django admin; every decision writes this item in the same
transaction (chat.services.verification)."""

from typing import Any

from chat import keys
from chat.domain import UserProfile
from chat.storage import dynamo


def _profile_from(values: dict[str, Any]) -> UserProfile:
    return UserProfile(
        user_id=values["userId"],
        nickname=values.get("nickname", ""),
        verification_status=values.get("verificationStatus", "pending"),
        suspended=bool(values.get("suspended", False)),
    )


async def get_profile(user_id: str) -> UserProfile | None:
    values = await dynamo.get(keys.profile(user_id))
    return _profile_from(values) if values else None


async def put_profile(profile: UserProfile, *, only_new: bool = False) -> None:
    """Write the item; with only_new, raise ConditionFailed if it exists."""
    condition = {"ConditionExpression": "attribute_not_exists(PK)"} if only_new else {}
    await dynamo.put(
        {
            **keys.profile(profile.user_id),
            "userId": profile.user_id,
            "nickname": profile.nickname,
            "verificationStatus": profile.verification_status,
        },
        **condition,
    )


async def set_nickname(user_id: str, nickname: str) -> None:
    await dynamo.update(
        keys.profile(user_id),
        UpdateExpression="SET userId = :user, nickname = :nickname",
        ExpressionAttributeValues=dynamo.values(user=user_id, nickname=nickname),
    )


async def set_verification_status(user_id: str, status: str) -> None:
    """Record a decision, keeping the nickname the item has (a user decided
    on before they were ever seen gets their id, as their Django profile)."""
    await dynamo.update(
        keys.profile(user_id),
        UpdateExpression="SET userId = :user, verificationStatus = :status, nickname = if_not_exists(nickname, :user)",
        ExpressionAttributeValues=dynamo.values(user=user_id, status=status),
    )


async def set_suspended(user_id: str, suspended: bool) -> None:
    """Suspend the user or lift it: the flag every connect and HTTP call
    reads with the item it reads anyway (no ORM on those paths)."""
    await dynamo.update(
        keys.profile(user_id),
        UpdateExpression=(
            "SET userId = :user, suspended = :suspended, nickname = if_not_exists(nickname, :user),"
            " verificationStatus = if_not_exists(verificationStatus, :pending)"
        ),
        ExpressionAttributeValues=dynamo.values(user=user_id, suspended=suspended, pending="pending"),
    )
